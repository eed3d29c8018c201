"""Training controls: run buttons, live hyperparameters, and the settings applied on reset."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from trainer import ConfigError, TrainConfig

BINARIZATION_CHOICES = {"bernoulli": ("dynamic", "threshold"), "gaussian": ("none",)}


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256' -> (512, 256), with a one-line error for anything else."""
    try:
        sizes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"hidden sizes: expected numbers like 512,512 (got {text!r})") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"hidden sizes: need one or more positive sizes (got {text!r})")
    return sizes


class Controls(QWidget):
    startPauseClicked = Signal()
    stepClicked = Signal()
    resetClicked = Signal()
    lrChanged = Signal(float)
    betaChanged = Signal(float)
    batchSizeChanged = Signal(int)

    def __init__(self, config: TrainConfig, parent=None):
        super().__init__(parent)
        self.start_button = QPushButton("Pause")
        self.step_button = QPushButton("Step")
        self.reset_button = QPushButton("Reset")
        self.start_button.setToolTip("Start, pause or resume training (Space)")
        self.step_button.setToolTip("Train on one minibatch while paused")
        self.reset_button.setToolTip("Rebuild the model from scratch with the settings below")

        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.beta = QDoubleSpinBox()
        self.beta.setDecimals(3)
        self.beta.setRange(0.0, 100.0)
        self.beta.setSingleStep(0.1)
        self.batch = QSpinBox()
        self.batch.setRange(1, 65536)
        self.batch.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        for box in (self.lr, self.beta, self.batch):
            box.setKeyboardTracking(False)  # apply on Enter / focus-out, not per keystroke

        self.likelihood = QComboBox()
        self.likelihood.addItems(list(BINARIZATION_CHOICES))
        self.binarization = QComboBox()
        self.hidden = QLineEdit()
        self.hidden.setToolTip("Hidden layer sizes of the encoder (the decoder mirrors them)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        for widget, tip in (
                (self.lr, "Adam's step size for phi and theta; applies at once"),
                (self.beta, "Weight of KL(q || p(z)) in the training loss (1 = the ELBO); "
                            "applies at once; every reported ELBO uses beta = 1"),
                (self.batch, "Datapoints per optimiser step; applies at once"),
                (self.likelihood, "p_theta(x|z): Bernoulli per pixel (binary images) or "
                                  "Gaussian (grey levels); applies on Reset"),
                (self.binarization, "How a grey image becomes the binary x a Bernoulli model "
                                    "scores: redrawn each step (dynamic) or at 0.5 (threshold); "
                                    "applies on Reset"),
                (self.seed, "Seed of the weights' initialisation and the minibatch order; "
                            "applies on Reset")):
            widget.setToolTip(tip)
        self.set_config(config)

        buttons = QHBoxLayout()
        for b in (self.start_button, self.step_button, self.reset_button):
            buttons.addWidget(b)
        live = QGroupBox("Live")
        live_form = QFormLayout(live)
        live_form.addRow("learning rate", self.lr)
        live_form.addRow("beta (KL weight)", self.beta)
        live_form.addRow("batch size", self.batch)
        on_reset = QGroupBox("Applied on reset")
        reset_form = QFormLayout(on_reset)
        reset_form.addRow("likelihood", self.likelihood)
        reset_form.addRow("binarization", self.binarization)
        reset_form.addRow("hidden sizes", self.hidden)
        reset_form.addRow("seed", self.seed)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(live)
        layout.addWidget(on_reset)
        layout.addStretch(1)

        self.start_button.clicked.connect(self.startPauseClicked)
        self.step_button.clicked.connect(self.stepClicked)
        self.reset_button.clicked.connect(self.resetClicked)
        self.lr.valueChanged.connect(self.lrChanged)
        self.beta.valueChanged.connect(self.betaChanged)
        self.batch.valueChanged.connect(self.batchSizeChanged)
        self.likelihood.currentTextChanged.connect(self._fill_binarizations)

    def set_config(self, config: TrainConfig) -> None:
        for box, value in ((self.lr, config.lr), (self.beta, config.beta),
                           (self.batch, config.batch_size), (self.seed, config.seed)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.likelihood.setCurrentText(config.likelihood)
        self._fill_binarizations(config.likelihood)
        self.binarization.setCurrentText(config.binarization)
        self.hidden.setText(",".join(str(h) for h in config.hidden))

    def _fill_binarizations(self, likelihood: str) -> None:
        self.binarization.clear()
        self.binarization.addItems(list(BINARIZATION_CHOICES.get(likelihood, ())))

    def set_running(self, running: bool, started: bool = True) -> None:
        self.start_button.setText("Pause" if running else ("Resume" if started else "Start"))
        self.step_button.setEnabled(not running)

    def config_for_reset(self, base: TrainConfig) -> TrainConfig:
        """The base config with every control's value; raises ConfigError on bad input."""
        return base.replace(lr=self.lr.value(), beta=self.beta.value(),
                            batch_size=self.batch.value(),
                            likelihood=self.likelihood.currentText(),
                            binarization=self.binarization.currentText(),
                            hidden=parse_hidden(self.hidden.text()), seed=self.seed.value())
