"""Layer navigator: a tree of layers (nested models as children), filterable by name or
type, with units, params, MACs, group and how many units are selected."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui import theme
from neuronviz.gui.state import State

COLUMNS = ["Layer", "Units", "Selected", "Type", "Output shape", "Params", "MACs", "Group"]
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2


def human(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def _shape(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape(s) for s in shape)
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


class Navigator(QWidget):
    def __init__(self, state: State, parent=None):
        super().__init__(parent)
        self.state = state
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers by name or type  (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SORT_ROLE)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setSortingEnabled(False)
        header = self.tree.header()
        header.setStretchLastSection(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree)
        self.rows: dict[str, list[QStandardItem]] = {}
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.tree.selectionModel().currentRowChanged.connect(self._on_current)
        state.modelChanged.connect(self.rebuild)
        state.planChanged.connect(self.update_selected)
        state.layerChanged.connect(self.show_layer)
        self._syncing = False

    @property
    def session(self):
        return self.state.session

    def rebuild(self) -> None:
        self.model.removeRows(0, self.model.rowCount())
        self.rows.clear()
        parents: dict[str, QStandardItem] = {}
        s = self.session
        totals: dict[str, list[int]] = {}  # nested model or captured layer -> params, MACs
        for info in s.layers():
            parts = info.path.split("/")
            for i in range(1, len(parts)):
                t = totals.setdefault("/".join(parts[:i]), [0, 0])
                t[0] += info.params
                t[1] += info.macs
        for info in s.layers():
            parts = info.path.split("/")
            parent = self.model.invisibleRootItem()
            for i in range(len(parts) - 1):
                key = "/".join(parts[: i + 1])
                if key not in parents:
                    folder = [QStandardItem(parts[i])] + [QStandardItem("") for _ in COLUMNS[1:]]
                    folder[3].setText(self._container_type(key))
                    folder[5].setText(human(totals[key][0]) if totals[key][0] else "")
                    folder[6].setText(human(totals[key][1]) if totals[key][1] else "")
                    for it in folder:
                        it.setFlags(Qt.ItemFlag.ItemIsEnabled)
                    parent.appendRow(folder)
                    parents[key] = folder[0]
                parent = parents[key]
            why = s.why_not_selectable(info.path)
            group = (
                info.group
                if info.group is None or isinstance(info.group, int)
                else ",".join(map(str, info.group))
            )
            cells = [
                parts[-1],
                "" if info.units is None else str(info.units),
                "",
                info.type,
                _shape(info.output_shape),
                human(info.params) if info.params else "",
                human(info.macs) if info.macs else "",
                "" if group is None else str(group),
            ]
            items = [QStandardItem(c) for c in cells]
            sort_keys = [
                info.path,
                info.units or 0,
                0,
                info.type,
                cells[4],
                info.params,
                info.macs,
                -1 if group is None else group,
            ]
            for it, k in zip(items, sort_keys, strict=True):
                it.setData(info.path, PATH_ROLE)
                it.setData(k, SORT_ROLE)
                if info.units is not None:  # can be viewed, even where its units can't be removed
                    it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                else:
                    it.setFlags(Qt.ItemFlag.ItemIsEnabled)
                if why is not None:
                    it.setForeground(QBrush(theme.DEAD))
                    it.setToolTip(f"{info.path}: {why}")
            for col in (1, 2, 5, 6, 7):
                items[col].setTextAlignment(
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
            if why is None:
                g = s.group(info.path)
                items[0].setToolTip(
                    f"{info.path} — group {g.index} '{g.name}': {', '.join(g.members)}"
                )
            parent.appendRow(items)
            self.rows[info.path] = items
        self.tree.expandAll()
        self.update_selected()
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.doItemsLayout()
        widths = [header.sectionSize(i) for i in range(len(COLUMNS))]
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # cheap updates from now on
        for i, w in enumerate(widths):
            header.resizeSection(i, max(w, 40 if i in (1, 2) else 0))
        self.show_layer()

    def _container_type(self, path: str) -> str:
        """The class of a nested model, or of a captured custom layer (marked as such)."""
        graph = self.session.trace.graph
        obj = graph.nested_models.get(path)
        if obj is None:
            return "Model"
        return type(obj).__name__ + (" (captured)" if path in graph.captured else "")

    def update_selected(self) -> None:
        s = self.session
        if s.trace is None:
            return
        removed = s.removed()
        for path, items in self.rows.items():
            n = len(removed.get(path, ()))
            units = s.units(path) if path in s.trace.layer_units else 0
            text = f"{n}" if n else ("" if not units else "·")
            if items[2].text() == text:
                continue  # unchanged: each item change costs a model signal
            items[2].setText(text)
            items[2].setData(n, SORT_ROLE)
            items[2].setForeground(QBrush(theme.SELECTED if n else theme.DEAD))

    def show_layer(self) -> None:
        path = self.session.layer
        if path not in self.rows:
            return
        idx = self.proxy.mapFromSource(self.rows[path][0].index())
        if idx.isValid() and self.tree.currentIndex() != idx:
            self._syncing = True
            self.tree.setCurrentIndex(idx)
            self.tree.scrollTo(idx)
            self._syncing = False

    def _on_current(self, current, _previous) -> None:
        if self._syncing or not current.isValid():
            return
        path = current.data(PATH_ROLE)
        if path and path in self.session.trace.layer_units:
            self.session.set_layer(path)

    def row_rect(self, path: str):
        """The viewport rectangle of a layer's row (for tests)."""
        idx = self.proxy.mapFromSource(self.rows[path][0].index())
        return self.tree.visualRect(idx)

    def cleanup(self) -> None:
        for sig, slot in (
            (self.state.modelChanged, self.rebuild),
            (self.state.planChanged, self.update_selected),
            (self.state.layerChanged, self.show_layer),
        ):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
