"""Menus, actions and keyboard shortcuts of the main window."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

from PySide6.QtGui import QAction, QKeySequence

from neuronviz.gui import files


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def build_menus(win) -> SimpleNamespace:
    m = SimpleNamespace(needs_model=[], actions={})
    bar = win.menuBar()

    def act(menu, name, text, slot, shortcut=None, needs_model=True, tip=None):
        a = QAction(text, win)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(lambda *_: slot())
        menu.addAction(a)
        m.actions[name] = a
        if needs_model:
            m.needs_model.append(a)
        return a

    f = bar.addMenu("&File")
    act(
        f,
        "open",
        "&Open Model…",
        lambda: files.ask_open_model(win),
        QKeySequence.StandardKey.Open,
        False,
    )
    m.recent = f.addMenu("Open &Recent")
    m.recent.aboutToShow.connect(lambda: _fill_recent(win, m.recent))
    act(
        f,
        "demo",
        "Open the &Demo",
        win.open_demo,
        None,
        False,
        "A small MNIST CNN with validation data",
    )
    f.addSeparator()
    act(f, "data", "Open Validation &Data…", lambda: files.ask_open_data(win), "Ctrl+D")
    act(f, "folder", "Open &Image Folder…", lambda: files.ask_open_image_folder(win))
    f.addSeparator()
    act(f, "export", "&Export Pruned Model…", lambda: _export(win), "Ctrl+E")
    act(
        f,
        "save_plan",
        "&Save Selection as Plan…",
        lambda: files.ask_save_plan(win),
        QKeySequence.StandardKey.Save,
    )
    act(f, "load_plan", "&Load Selection Plan…", lambda: files.ask_load_plan(win), "Ctrl+L")
    f.addSeparator()
    act(f, "quit", "&Quit", win.close, QKeySequence.StandardKey.Quit, False)

    e = bar.addMenu("&Edit")
    undo = win.selection.stack.createUndoAction(win, "&Undo")
    undo.setShortcut(QKeySequence("Ctrl+Z"))
    redo = win.selection.stack.createRedoAction(win, "&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    e.addAction(undo)
    e.addAction(redo)
    m.actions.update(undo=undo, redo=redo)
    e.addSeparator()
    act(e, "criterion", "Select by &Criterion…", lambda: _criterion(win), "Ctrl+K")
    act(e, "invert", "&Invert Selection in Layer", win.selection.invert, "Ctrl+I")
    act(e, "clear_layer", "Clear Selection in &Layer", win.selection.clear_layer, "Ctrl+Backspace")
    act(e, "clear", "&Clear All Selections", win.selection.clear, "Ctrl+Shift+Backspace")
    if _has("neuronviz.gui.sparsify_dialog"):
        e.addSeparator()
        act(e, "sparsify", "S&parsify Weights…", lambda: _sparsify(win))

    v = bar.addMenu("&View")
    for i in range(win.tabs.count()):
        act(
            v,
            f"tab{i}",
            win.tabs.tabText(i),
            lambda i=i: win.tabs.setCurrentIndex(i),
            f"Ctrl+{i + 1}",
        )
    v.addSeparator()
    act(v, "next_layer", "&Next Layer", lambda: _step_layer(win, 1), "Ctrl+Down")
    act(v, "prev_layer", "&Previous Layer", lambda: _step_layer(win, -1), "Ctrl+Up")
    act(
        v,
        "filter",
        "&Filter Layers",
        lambda: (win.navigator.filter.setFocus(), win.navigator.filter.selectAll()),
        "Ctrl+F",
    )
    act(v, "sorted", "&Sort Bars by Norm", lambda: win.norms.sorted.toggle(), "Ctrl+T")
    act(v, "range", "&Range Select Tool", lambda: _toggle_range(win), "Ctrl+G")
    v.addSeparator()
    v.addAction(win.nav_dock.toggleViewAction())
    v.addAction(win.graph_dock.toggleViewAction())
    v.addAction(win.side_dock.toggleViewAction())

    a = bar.addMenu("&Analysis")
    act(a, "stats", "&Recompute Statistics", win.pipeline.analyze, "Ctrl+R")
    act(
        a,
        "sweep",
        "Run &Sensitivity Sweep",
        lambda: (win.tabs.setCurrentWidget(win.sensitivity), win.sensitivity.run()),
        "Ctrl+Shift+R",
    )
    act(a, "cancel", "&Cancel Background Task", win.cancel_task, "Ctrl+.", False)
    act(a, "dismiss", "&Dismiss Message", win.banner.hide, "Esc", False)
    if _has("neuronviz.gui.finetune_dialog"):
        a.addSeparator()
        act(a, "finetune", "&Fine-tune a Model…", lambda: _finetune(win))

    h = bar.addMenu("&Help")
    act(h, "shortcuts", "&Keyboard Shortcuts", lambda: _shortcuts(win, m), "F1", False)
    act(h, "about", "&About neuronviz", lambda: _about(win), None, False)
    return m


def _fill_recent(win, menu) -> None:
    menu.clear()
    items = files.recent(win, "models")
    for p in items:
        menu.addAction(p, lambda p=p: win.open_model(p))
    data = files.recent(win, "data")
    if data:
        menu.addSeparator()
        for p in data:
            menu.addAction(f"Data: {p}", lambda p=p: win.open_data(p))
    if not items and not data:
        menu.addAction("(none)").setEnabled(False)


def _step_layer(win, step: int) -> None:
    s = win.state.session
    layers = list(s.trace.layer_units) if s.trace else []
    if not layers:
        return
    i = layers.index(s.layer) if s.layer in layers else -1
    s.set_layer(layers[(i + step) % len(layers)])


def _toggle_range(win) -> None:
    view = win.tabs.currentWidget()
    if hasattr(view, "range"):
        view.range.toggle()


def _criterion(win) -> None:
    from neuronviz.gui.criterion_dialog import run_criterion_dialog

    run_criterion_dialog(win)


def _export(win) -> None:
    from neuronviz.gui.export import run_export_dialog

    run_export_dialog(win)


def _about(win) -> None:
    from neuronviz.gui.about import show_about

    show_about(win)


def _shortcuts(win, m) -> None:
    from neuronviz.gui.about import show_shortcuts

    show_shortcuts(win, m.actions)


def _sparsify(win) -> None:
    from neuronviz.gui.integrations import open_sparsify

    open_sparsify(win)


def _finetune(win) -> None:
    from neuronviz.gui.integrations import open_finetune

    open_finetune(win)
