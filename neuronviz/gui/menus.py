"""Menus, actions and keyboard shortcuts of the main window. The window's own widgets
(tabs, docks, views) are wired here; dialogs and file actions get the Workbench."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from neuronviz.gui import about, files, refining, rounding
from neuronviz.gui.budget_dialog import run_budget_dialog
from neuronviz.gui.criterion_dialog import run_criterion_dialog
from neuronviz.gui.export import run_export_dialog
from neuronviz.gui.integrations import open_finetune, open_sparsify


def build_menus(win) -> SimpleNamespace:
    """The menu bar of main window `win`: SimpleNamespace(actions, needs_model, recent)."""
    m = SimpleNamespace(needs_model=[], actions={})
    bar = win.menuBar()
    bench = win.bench

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
        lambda: files.ask_open_model(bench),
        QKeySequence.StandardKey.Open,
        False,
    )
    m.recent = f.addMenu("Open &Recent")
    m.recent.aboutToShow.connect(lambda: _fill_recent(bench, m.recent))
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
    act(f, "data", "Open Validation &Data…", lambda: files.ask_open_data(bench), "Ctrl+D")
    act(f, "folder", "Open &Image Folder…", lambda: files.ask_open_image_folder(bench))
    f.addSeparator()
    act(f, "export", "&Export Pruned Model…", lambda: run_export_dialog(bench), "Ctrl+E")
    act(
        f,
        "save_plan",
        "&Save Selection as Plan…",
        lambda: files.ask_save_plan(bench),
        QKeySequence.StandardKey.Save,
    )
    act(f, "load_plan", "&Load Selection Plan…", lambda: files.ask_load_plan(bench), "Ctrl+L")
    act(f, "plan_report", "Save Plan &Report (Markdown)…", lambda: _plan_report(win))
    act(f, "picture", "Save &Picture of the View…", lambda: _picture(win, False), "Ctrl+Shift+P")
    act(f, "graph_picture", "Save Picture of the &Graph…", lambda: _picture(win, True))
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
    act(e, "criterion", "Select by &Criterion…", lambda: run_criterion_dialog(bench), "Ctrl+K")
    act(e, "budget", "Prune to &Budget…", lambda: run_budget_dialog(bench), "Ctrl+B")
    act(e, "round", "", lambda: rounding.round_selection(bench), "Ctrl+Shift+N")
    act(
        e,
        "refine",
        "Re&fine Selection on the Data",
        lambda: refining.refine_selection(bench),
        "Ctrl+Shift+F",
        tip="Choose the selected layers' units again by exact loss on the data, as many per layer",
    )
    _rounding_menu(e.addMenu("Channel R&ounding"), bench, m)
    act(e, "invert", "&Invert Selection in Layer", win.selection.invert, "Ctrl+I")
    act(e, "clear_layer", "Clear Selection in &Layer", win.selection.clear_layer, "Ctrl+Backspace")
    act(e, "clear", "&Clear All Selections", win.selection.clear, "Ctrl+Shift+Backspace")
    e.addSeparator()
    act(e, "sparsify", "S&parsify Weights…", lambda: open_sparsify(bench))

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
    act(v, "next_layer", "&Next Layer", lambda: _step_layer(bench.session, 1), "Ctrl+Down")
    act(v, "prev_layer", "&Previous Layer", lambda: _step_layer(bench.session, -1), "Ctrl+Up")
    act(
        v,
        "filter",
        "&Filter Layers",
        lambda: (win.navigator.filter.setFocus(), win.navigator.filter.selectAll()),
        "Ctrl+F",
    )
    act(v, "sorted", "&Sort Bars by Norm", lambda: win.norms.sorted.toggle(), "Ctrl+T")
    act(v, "range", "&Range Select Tool", lambda: _toggle_range(win.tabs.currentWidget()), "Ctrl+G")
    act(
        v,
        "head_map",
        "&Head Map",
        win.show_head_map,
        "Ctrl+Shift+H",
        tip="Attention layers x heads, coloured by head importance; a click selects a head",
    )
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
    act(a, "speed", "&Measure Speed", win.preview.measure, "Ctrl+M")
    act(a, "cancel", "&Cancel Background Task", win.cancel_task, "Ctrl+.", False)
    act(a, "dismiss", "&Dismiss Message", win.banner.hide, "Esc", False)
    a.addSeparator()
    act(a, "finetune", "&Fine-tune a Model…", lambda: open_finetune(bench))

    h = bar.addMenu("&Help")
    act(
        h,
        "shortcuts",
        "&Keyboard Shortcuts",
        lambda: about.show_shortcuts(win, m.actions),
        "F1",
        False,
    )
    act(h, "about", "&About neuronviz", lambda: about.show_about(win), None, False)
    return m


def _rounding_menu(menu, bench, m) -> None:
    """The app's channel rounding (a persisted setting): used by budget plans and by
    Round Selection."""
    group = QActionGroup(menu)
    current = rounding.round_to(bench.settings)
    default = rounding.default_round_to()

    def choose(n: int) -> None:
        rounding.set_round_to(bench.settings, n)
        _round_text(m, n)

    for n in sorted({*rounding.CHOICES, current}):
        text = "Off" if n == 1 else f"Multiples of {n}" + (" (default)" if n == default else "")
        a = menu.addAction(text, lambda n=n: choose(n))
        a.setCheckable(True)
        a.setChecked(n == current)
        group.addAction(a)
        m.actions[f"round_to_{n}"] = a
    _round_text(m, current)


def _round_text(m, n: int) -> None:
    a = m.actions["round"]
    a.setText(f"&Round Selection to Multiples of {n}" if n > 1 else "&Round Selection (off)")
    a.setStatusTip("Every selected group keeps a multiple of N units (Edit ▸ Channel Rounding)")


def _fill_recent(bench, menu) -> None:
    menu.clear()
    items = files.recent(bench.settings, "models")
    for p in items:
        menu.addAction(p, lambda p=p: bench.open_model(p))
    data = files.recent(bench.settings, "data")
    if data:
        menu.addSeparator()
        for p in data:
            menu.addAction(f"Data: {p}", lambda p=p: bench.open_data(p))
    if not items and not data:
        menu.addAction("(none)").setEnabled(False)


def _step_layer(session, step: int) -> None:
    layers = list(session.trace.layer_units) if session.trace else []
    if not layers:
        return
    i = layers.index(session.layer) if session.layer in layers else -1
    session.set_layer(layers[(i + step) % len(layers)])


def _toggle_range(view) -> None:
    if hasattr(view, "range"):
        view.range.toggle()


def _picture(win, graph: bool) -> None:
    from neuronviz.gui.pictures import ask_save_picture

    tab = win.tabs.currentWidget()
    name = "graph" if graph else win.tabs.tabText(win.tabs.currentIndex()).lower()
    ask_save_picture(win.graph.canvas if graph else tab, win, name, win.state)


def _plan_report(win) -> None:
    from neuronviz.gui.report import ask_plan_report

    ask_plan_report(win.state.session, win, win.state)
