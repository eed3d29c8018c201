"""File > New run: the settings a new run changes from the current run's config.

Prefilled with the current run's beta, likelihood (and its binarization rule), architecture,
latent size, hidden sizes, seed, learning rate and inference mode; ``changes()`` returns only
what the user changed, and explorer.core.state.derive_config makes (and validates) the new
config from them.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from explorer.core.state import SCHEDULE_TEXT, derive_config, describe_changes
from explorer.qt.views.controls import (
    BETA_RANGE,
    BINARIZATION_CHOICES,
    HIDDEN_TIP,
    LR_RANGE,
    LatentDimBox,
    ScientificSpinBox,
    arch_box,
    check_fits_images,
    hidden_applies,
    inference_box,
)
from trainer import ConfigError, TrainConfig

MAX_DIALOG_SEED = 2**31 - 1  # QSpinBox's limit


class NewRunDialog(QDialog):
    def __init__(self, base: TrainConfig, base_name: str, schedule: str, parent=None,
                 image_shape: tuple[int, int] | None = None):
        """``image_shape``: the dataset's, which the chosen architecture must take."""
        super().__init__(parent)
        self.base = base
        self.image_shape = image_shape
        self.setWindowTitle("New run")
        self.beta = ScientificSpinBox(*BETA_RANGE)
        self.beta.setValue(base.beta)
        self.lr = ScientificSpinBox(*LR_RANGE)
        self.lr.setValue(base.lr)
        self.likelihood = QComboBox()
        self.likelihood.addItems(list(BINARIZATION_CHOICES))
        self.likelihood.setCurrentText(base.likelihood)
        self.binarization = QComboBox()
        self.arch = arch_box()
        self.arch.setCurrentText(base.arch)
        self.latent_dim = LatentDimBox()
        self.latent_dim.show_value(base.latent_dim)
        self.hidden = QLineEdit(", ".join(str(h) for h in base.hidden))
        self.hidden.setToolTip(HIDDEN_TIP)
        hidden_applies(self.hidden, base.arch)
        self.arch.currentTextChanged.connect(lambda arch: hidden_applies(self.hidden, arch))
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_DIALOG_SEED)
        self.seed.setValue(min(base.seed + 1, MAX_DIALOG_SEED))  # another seed by default
        self.inference = inference_box()
        self.inference.setCurrentText(base.inference)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.likelihood.currentTextChanged.connect(self._fill_binarization)
        self._fill_binarization(base.likelihood)
        self.binarization.setCurrentText(base.binarization)
        form = QFormLayout()
        form.addRow("beta (KL weight)", self.beta)
        form.addRow("likelihood p(x|z)", self.likelihood)
        form.addRow("binarization", self.binarization)
        form.addRow("architecture", self.arch)
        form.addRow("latent dim", self.latent_dim)
        form.addRow("hidden sizes", self.hidden)
        form.addRow("seed", self.seed)
        form.addRow("learning rate", self.lr)
        form.addRow("inference", self.inference)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        note = QLabel(f"A copy of {base_name}'s settings on the same dataset, with these "
                      f"changes. Now {SCHEDULE_TEXT[schedule]} (Training menu).")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _fill_binarization(self, likelihood: str) -> None:
        self.binarization.clear()
        self.binarization.addItems(list(BINARIZATION_CHOICES.get(likelihood, ())))

    def changes(self) -> dict:
        """The settings that differ from the base config (ValueError for bad hidden sizes)."""
        try:
            hidden = tuple(int(h) for h in self.hidden.text().replace("x", ",").split(",")
                           if h.strip())
        except ValueError:
            raise ValueError("hidden sizes: whole numbers separated by commas, e.g. 512, 512"
                             ) from None
        values = {"beta": self.beta.value(), "likelihood": self.likelihood.currentText(),
                  "binarization": self.binarization.currentText(), "hidden": hidden,
                  "seed": self.seed.value(), "lr": self.lr.value(),
                  "inference": self.inference.currentText(), "arch": self.arch.currentText(),
                  "latent_dim": self.latent_dim.value()}
        return {k: v for k, v in values.items() if v != getattr(self.base, k)}

    def config(self) -> TrainConfig:
        """The new run's config; raises ValueError (ConfigError) naming the bad field."""
        config = derive_config(self.base, **self.changes())
        check_fits_images(config, self.image_shape)
        return config

    def name(self) -> str:
        return describe_changes(self.changes()) or "copy"

    def _accept(self) -> None:
        try:
            self.config()
        except (ConfigError, ValueError) as exc:
            self.error.setText(f"Not valid: {exc}")
            return
        self.accept()
