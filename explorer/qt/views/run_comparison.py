"""The selected datapoint's numbers in every run, one row per run in the run's colour.

The numbers come from explorer.core.compare, computed off the GUI thread (one explorer.qt.jobs lane:
a newer selection or snapshot replaces the request in flight).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.compare import RunNumbers, compare_point
from explorer.qt.jobs import JobLane

COLUMNS = ("run", "ELBO_i", "log p(x)", "gap", "KL")
HEADER_TIPS = ("The run (its colour is its planes' and curves')",
               "ELBO_i of the encoder's q, nats, higher is better",
               "log p(x), nats: exact on a grid (2-D latents), else IWAE +/- its SE",
               "The inference gap log p(x) - ELBO_i = KL(q || p(z|x)), nats, >= 0",
               "KL(q(z|x) || p(z)), nats, >= 0")


class RunComparison(QWidget):
    refreshRequested = Signal()  # the runs trained on: compute again with their newest models

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Compute again with every run's newest model (the "
                                       "numbers are of the models when the point was chosen)")
        self.refresh_button.clicked.connect(self.refreshRequested)
        self.status = QLabel("Select a datapoint: its numbers in every run appear here")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for c, tip in enumerate(HEADER_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("Per datapoint, in nats, higher is better; log p(x) is exact on "
                              "a grid for 2-D latents, else the IWAE estimate +/- its SE; "
                              "each run scores its own x (its binarization)")
        self.setToolTip("The selected datapoint's numbers in every run, side by side")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self.rows: list[RunNumbers] = []
        self._colours: dict[str, str] = {}
        self._index: int | None = None
        self._job = JobLane(self)
        self._job.done.connect(self._show)
        self._job.failed.connect(lambda m: self.status.setText(f"Could not compute: {m}"))

    def compare(self, runs, dataset, index: int) -> None:
        """``runs``: (name, colour, FrozenVAE, q) of every run that has a model, q its
        (mean, sigma) for the point or None for the encoder's (explorer.core.compare)."""
        self._colours = {name: colour for name, colour, *_ in runs}
        self.status.setText(f"datapoint #{index}: computing in every run\u2026")
        self._index = index
        self._job.submit(compare_point, [(name, model, q) for name, _, model, q in runs], dataset,
                         index)

    def clear(self) -> None:
        self._job.cancel()
        self.rows = []
        self.table.setRowCount(0)
        self.status.setText("Select a datapoint: its numbers in every run appear here")

    def busy(self) -> bool:
        return self._job.busy()

    def shutdown(self, msecs: int = 30_000) -> bool:
        return self._job.cancel_and_wait(msecs)

    def _show(self, rows: list[RunNumbers]) -> None:
        self.rows = rows
        methods = sorted({row.method for row in rows})
        self.status.setText(f"datapoint #{self._index} in every run (nats, higher is better; "
                            f"log p(x) by {', '.join(methods)})")
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            log_px = (f"{row.log_px:.2f}" if row.log_px_se is None
                      else f"{row.log_px:.2f} \u00b1 {row.log_px_se:.2f}")
            cells = (row.run, f"{row.elbo:.2f}", log_px,
                     f"{row.inference_gap:.2f}", f"{row.kl:.2f}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setForeground(QColor(self._colours.get(row.run, "#808080")))
                else:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
