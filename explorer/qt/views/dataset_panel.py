"""Dataset info: what is being modelled, and how pixels become the data the likelihood sees."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from trainer import ImageDataset, TrainConfig, split_indices

BINARIZATION_TEXT = {
    # "Pixel values": grey levels, or each channel's value in a colour image.
    "dynamic": "dynamic: x ~ Bernoulli(pixel value) redrawn each training step; every view "
               "and number uses one fixed draw per image",
    "threshold": "threshold: x = 1 where a pixel value > 0.5, else 0",
    "none": "none: pixel values in [0, 1] used as they are",
}
# The dataset's polarity rule (trainer.ImageDataset.inverted), for its images and dropped ones.
POLARITY_TEXT = {
    True: "dark ink on light in most files: every image inverted to bright ink on black, "
          "and so are dropped images",
    False: "bright ink on dark: every image kept as it is, and so are dropped images",
    None: "as stored; a dropped image is inverted when its own border shows dark ink on light",
}
COLOUR_POLARITY = ("colour pictures, kept as they are; a dropped image keeps its colours and "
                   "is fitted whole on black")
LIKELIHOOD_TEXT = {
    "bernoulli": "Bernoulli per pixel",
    "gaussian": "Gaussian per pixel (mean, variance)",
}


class DatasetPanel(QWidget):
    def __init__(self, dataset: ImageDataset, config: TrainConfig, parent=None):
        super().__init__(parent)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout(self)
        for key in ("name", "source", "N", "image size", "polarity", "labels", "split",
                    "likelihood", "binarization", "notes"):
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            form.addRow(key, label)
        self.set_dataset(dataset, config)

    def set_dataset(self, dataset: ImageDataset, config: TrainConfig) -> None:
        """Describe ``dataset`` (again after a dataset switch)."""
        # The session draws its split once; resets and checkpoints keep it (so no seed here:
        # after a reset with a new seed, the split is still the first one).
        split = split_indices(len(dataset), config.heldout_fraction, config.seed)
        h, w = dataset.image_shape
        n_labels = len(dataset.label_names) if dataset.label_names else 0
        values = {
            "name": dataset.name,
            "source": dataset.source,
            "N": f"{len(dataset):,} images",
            "image size": f"{h} x {w} pixels, "
                          + ("grey" if dataset.channels == 1 else "colour (RGB)"),
            "polarity": (COLOUR_POLARITY if dataset.channels == 3
                         else POLARITY_TEXT[dataset.inverted]),
            "labels": f"{n_labels} classes" if dataset.labels is not None else "none",
            "split": f"{len(split.train):,} train / {len(split.heldout):,} held out "
                     f"({config.heldout_fraction:.0%}, kept through resets)",
            # What loading changed or skipped (rescaled values, missing labels, ...).
            "notes": "\n".join(dataset.notes) or "none",
        }
        for key, text in values.items():
            self.fields[key].setText(text)
        self.set_config(config)

    def set_config(self, config: TrainConfig) -> None:
        """Likelihood and binarization change on reset."""
        self.fields["likelihood"].setText(LIKELIHOOD_TEXT.get(config.likelihood,
                                                              config.likelihood))
        self.fields["binarization"].setText(BINARIZATION_TEXT.get(config.binarization,
                                                                  config.binarization))
