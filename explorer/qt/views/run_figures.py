"""The status bar's permanent figures of a run: samples/s, epochs, the ELBOs, the epoch bar."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from trainer import Progress

ELBO_TIP = "ELBO: per datapoint, in nats; higher is better (ELBO <= log p(x))"


class RunFigures:
    """Adds its labels and bar to ``bar``; ``show`` a Progress, ``clear`` for a new run."""

    def __init__(self, bar: QStatusBar, n_points: int):
        self.rate_label = QLabel()
        self.epoch_label = QLabel()
        self.train_label = QLabel()
        self.heldout_label = QLabel()
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setMaximumWidth(220)
        self.epoch_bar.setTextVisible(True)
        self.clear(n_points)
        for w in (self.rate_label, self.epoch_label, self.train_label, self.heldout_label):
            w.setToolTip(ELBO_TIP)
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.epoch_bar)

    def clear(self, n_points: int) -> None:
        """No figures yet: a fresh window, or a new dataset of ``n_points``."""
        self.rate_label.setText("- samples/s")
        self.epoch_label.setText("0 epochs done")
        self.train_label.setText("train ELBO - nats")
        self.heldout_label.setText("held-out ELBO - nats")
        self.epoch_bar.setRange(0, 0)  # busy until the first snapshot: encoding every point
        self.epoch_bar.setFormat(f"encoding {n_points:,} points")

    def show(self, p: Progress) -> None:
        # A paused run trains no samples: its last rate would read as a live one.
        self.rate_label.setText("paused" if p.paused else f"{p.samples_per_second:,.0f} samples/s")
        self.epoch_label.setText(f"{p.epoch} epochs done")
        train, heldout = p.train.get("elbo", ()), p.heldout.get("elbo", ())
        if len(train):
            self.train_label.setText(f"train ELBO {train[-1]:.2f} nats")
        if len(heldout):
            self.heldout_label.setText(f"held-out ELBO {heldout[-1]:.2f} nats")
        if self.epoch_bar.maximum() == 0:
            self.epoch_bar.setRange(0, 100)
        # Whole percents: a new value repaints the bar at once (QProgressBar's own rule),
        # and thousandths changed at every progress.
        self.epoch_bar.setValue(int(p.epoch_progress * 100))
        self.epoch_bar.setFormat(f"epoch {p.epoch + 1}: %p%")
