"""Training controls: run buttons, live hyperparameters, and the settings applied on reset."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from trainer import ConfigError, TrainConfig
from trainer.config import ARCHS, INFERENCE_MODES
from trainer.conv import check_image_shape

BINARIZATION_CHOICES = {"bernoulli": ("dynamic", "threshold"), "gaussian": ("none",)}
# What a legitimate `train` run can have (trainer.config validates lr > 0, beta >= 0,
# batch_size >= 1, 0 <= seed < 2^63), so the controls show a CLI run's values as they are.
LR_RANGE = (1e-12, 1e6)
BETA_RANGE = (0.0, 1e6)
MAX_BATCH = 2**31 - 1  # QSpinBox's limit; far beyond any dataset's size
MAX_SEED = 2**63 - 1
# The latent sizes the app offers (trainer.config allows far more; a plane, a per-dimension
# panel and traversals stay readable up to this). A run outside it is shown as it is.
LATENT_DIM_RANGE = (2, 64)
ARCH_TIP = ("The encoder and decoder: an MLP with the hidden sizes below, or a convolutional "
            "net (Conv 32 and 64, stride 2, then dense; transposed convs back) sized from the "
            "image; applies on Reset")
LATENT_DIM_TIP = ("Dimensions of z; above 2 the plane shows a chosen 2-D view of it; applies "
                  "on Reset")
HIDDEN_TIP = "Hidden layer sizes of the encoder (the decoder mirrors them)"
HIDDEN_CONV_TIP = "The conv model's layers are fixed, sized from the image: no hidden sizes"
INFERENCE_TIP = ("Who gives each training point its q: the encoder f_phi(x_i) (amortized), a "
                 "stored free parameter lambda_i per point (free), or f_phi(x_i) refined by K "
                 "steps on its ELBO (semi); applies on Reset")


def inference_box() -> QComboBox:
    box = QComboBox()
    box.addItems(list(INFERENCE_MODES))
    box.setToolTip(INFERENCE_TIP)
    return box


def arch_box() -> QComboBox:
    box = QComboBox()
    box.addItems(list(ARCHS))
    box.setToolTip(ARCH_TIP)
    return box


class LatentDimBox(QSpinBox):
    """The latent size, LATENT_DIM_RANGE; a run's own value outside it (a CLI run's) widens
    the range to show it as it is, rather than a clamped number a Reset would apply."""

    def __init__(self):
        super().__init__()
        self.setRange(*LATENT_DIM_RANGE)
        self.setToolTip(LATENT_DIM_TIP)

    def show_value(self, d: int) -> None:
        low, high = LATENT_DIM_RANGE
        self.setRange(min(low, int(d)), max(high, int(d)))
        self.setValue(int(d))


def check_fits_images(config: TrainConfig, image_shape: tuple[int, int] | None) -> None:
    """ConfigError, before any run is discarded, when the architecture cannot take the
    dataset's images (the conv model takes 8 to 64 pixels a side)."""
    if image_shape is not None and config.arch == "conv":
        check_image_shape(tuple(image_shape))


def hidden_applies(hidden: QLineEdit, arch: str) -> None:
    """Hidden sizes mean something for the MLP only: greyed out, and said why, for conv."""
    hidden.setEnabled(arch != "conv")
    hidden.setToolTip(HIDDEN_CONV_TIP if arch == "conv" else HIDDEN_TIP)


class ScientificSpinBox(QDoubleSpinBox):
    """A spin box that shows and accepts any magnitude (1e-07, 0.001, 10, 2.5e+03): a fixed
    number of decimals showed lr 10 as 1.0 within a 0..1 range, or 1e-8 as 0.0."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.setDecimals(320)  # no rounding of the value; the text is formatted below
        self.setRange(low, high)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            # A number on its way ("1e", "-", "") is intermediate; letters are not.
            ok = all(c in "0123456789.eE+-" for c in stripped)
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        inside = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:
        # Up/down multiply or divide by 10^(1/3)...: whole decades in three steps.
        value = self.value() if self.value() > 0 else self.minimum() or 1e-3
        self.setValue(value * 10 ** (steps / 3))


class SeedBox(QLineEdit):
    """A seed from 0 to 2^63 - 1 (QSpinBox stops at 2^31 - 1 and overflows past it)."""

    def __init__(self):
        super().__init__()
        self.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{1,19}")))

    def value(self) -> int:
        try:
            return int(self.text())
        except ValueError:
            return 0

    def setValue(self, value: int) -> None:
        self.setText(str(int(value)))


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

        self.lr = ScientificSpinBox(*LR_RANGE)
        self.beta = ScientificSpinBox(*BETA_RANGE)
        self.batch = QSpinBox()
        self.batch.setRange(1, MAX_BATCH)
        self.batch.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        for box in (self.lr, self.beta, self.batch):
            box.setKeyboardTracking(False)  # apply on Enter / focus-out, not per keystroke

        self.likelihood = QComboBox()
        self.likelihood.addItems(list(BINARIZATION_CHOICES))
        self.binarization = QComboBox()
        self.hidden = QLineEdit()
        self.hidden.setToolTip(HIDDEN_TIP)
        self.arch = arch_box()
        self.latent_dim = LatentDimBox()
        self.seed = SeedBox()
        self.inference = inference_box()
        self.parameters = QLabel()
        self.parameters.setWordWrap(True)
        self.parameters.setToolTip("What the run's optimisers update (Help > What am I "
                                   "looking at? says more)")
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
        reset_form.addRow("architecture", self.arch)
        reset_form.addRow("latent dim", self.latent_dim)
        reset_form.addRow("hidden sizes", self.hidden)
        reset_form.addRow("seed", self.seed)
        reset_form.addRow("inference", self.inference)
        optimised = QGroupBox("Parameters being optimised")
        QVBoxLayout(optimised).addWidget(self.parameters)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(live)
        layout.addWidget(on_reset)
        layout.addWidget(optimised)
        layout.addStretch(1)

        self.start_button.clicked.connect(self.startPauseClicked)
        self.step_button.clicked.connect(self.stepClicked)
        self.reset_button.clicked.connect(self.resetClicked)
        self.lr.valueChanged.connect(self.lrChanged)
        self.beta.valueChanged.connect(self.betaChanged)
        self.batch.valueChanged.connect(self.batchSizeChanged)
        self.likelihood.currentTextChanged.connect(self._fill_binarizations)
        self.arch.currentTextChanged.connect(lambda arch: hidden_applies(self.hidden, arch))

    def set_config(self, config: TrainConfig) -> None:
        for box, value in ((self.lr, config.lr), (self.beta, config.beta),
                           (self.batch, min(config.batch_size, MAX_BATCH)),
                           (self.seed, config.seed)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.likelihood.setCurrentText(config.likelihood)
        self._fill_binarizations(config.likelihood)
        self.binarization.setCurrentText(config.binarization)
        self.hidden.setText(",".join(str(h) for h in config.hidden))
        self.arch.setCurrentText(config.arch)
        hidden_applies(self.hidden, config.arch)
        self.latent_dim.show_value(config.latent_dim)
        self.inference.setCurrentText(config.inference)

    def set_parameter_counts(self, text: str) -> None:
        """explorer.core.explainer.optimised_text of the run shown."""
        self.parameters.setText(text)

    def _fill_binarizations(self, likelihood: str) -> None:
        self.binarization.clear()
        self.binarization.addItems(list(BINARIZATION_CHOICES.get(likelihood, ())))

    def set_running(self, running: bool, started: bool = True) -> None:
        self.set_failed(False)
        self.start_button.setText("Pause" if running else ("Resume" if started else "Start"))
        self.step_button.setEnabled(not running)

    def set_failed(self, failed: bool) -> None:
        """Training ended with an error: only Reset (a fresh model) can go on."""
        self.start_button.setEnabled(not failed)
        self.step_button.setEnabled(not failed)
        self.reset_button.setToolTip("Training stopped with an error: build a fresh model"
                                     if failed else
                                     "Rebuild the model from scratch with the settings below")

    def config_for_reset(self, base: TrainConfig,
                         image_shape: tuple[int, int] | None = None) -> TrainConfig:
        """The base config with every control's value; raises ConfigError on bad input,
        or when the architecture cannot take images of ``image_shape``."""
        seed_text = self.seed.text().strip()
        if not seed_text.isdigit() or int(seed_text) > MAX_SEED:
            raise ConfigError(f"seed: expected a whole number from 0 to {MAX_SEED} "
                              f"(got {seed_text!r})")
        config = base.replace(lr=self.lr.value(), beta=self.beta.value(),
                              batch_size=self.batch.value(),
                              likelihood=self.likelihood.currentText(),
                              binarization=self.binarization.currentText(),
                              hidden=parse_hidden(self.hidden.text()), seed=int(seed_text),
                              inference=self.inference.currentText(),
                              arch=self.arch.currentText(), latent_dim=self.latent_dim.value())
        config.validate()
        check_fits_images(config, image_shape)
        return config
