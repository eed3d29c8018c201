"""The decoded-image panel: the image of a clicked z, and a selected datapoint beside its
reconstruction; where the datapoint's x (what the numbers score, trainer.evidence) differs from
its image, that x is shown between them. Images are grey or RGB, as the dataset stores them."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from explorer.qt.paint_guard import guarded

MEAN_TEXT = "decoder mean E[x|z]"
SAMPLE_TEXT = "one sample x ~ p(x|z)"
SCORED_TEXT = "x_i, as scored\n(its fixed binarisation)"


def to_qimage(image: np.ndarray) -> QImage:
    """An image as the data stores it, (H, W) grey or (H, W, 3) RGB, floats in [0, 1]
    (clipped; NaN as 0) or uint8, -> an 8-bit grey or RGB QImage that owns its bytes. The
    one place where the app turns pixels into a QImage, so every view shows colour alike."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255 + 0.5
    a = np.ascontiguousarray(a, np.uint8)
    if a.ndim == 2:
        h, w = a.shape
        return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    if a.ndim == 3 and a.shape[2] == 3:
        h, w = a.shape[:2]
        return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    raise ValueError(f"expected an (H, W) grey or (H, W, 3) RGB image, got shape {a.shape}")


class ImageTile(QWidget):
    """One image drawn square and pixel-sharp at any size (nearest-neighbour scaling)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.array: np.ndarray | None = None  # what is shown, (H, W) or (H, W, 3) floats
        self._image: QImage | None = None
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(140, 140)

    def set_image(self, image: np.ndarray | None) -> None:
        self.array = None if image is None else np.asarray(image, np.float32)
        self._image = None if image is None else to_qimage(self.array)
        self.update()

    @guarded()
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        side = min(self.width(), self.height())
        target = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        if self._image is None:
            p.setPen(self.palette().mid().color())
            p.drawRect(target.adjusted(0, 0, -1, -1))
        else:
            p.drawImage(target, self._image)  # no smooth transform: pixels stay square
        p.end()


class ImagePanel(QWidget):
    """Left: the decoded z. Right: the selected datapoint and its reconstruction."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.z: tuple[float, float] | None = None
        self.decoded = ImageTile()
        self.original = ImageTile()
        self.scored = ImageTile()  # the datapoint's x, when it is not the image itself
        self.reconstruction = ImageTile()
        self.z_label = QLabel("click the plane to decode a z")
        self.point_label = QLabel("click a point to select it")
        self.scored_label = QLabel(SCORED_TEXT)
        self.recon_label = QLabel("")
        for label in (self.z_label, self.point_label, self.scored_label, self.recon_label):
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.mean_button = QRadioButton(MEAN_TEXT)
        self.sample_button = QRadioButton(SAMPLE_TEXT)
        self.mean_button.setChecked(True)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mean_button)
        self.mode_group.addButton(self.sample_button)

        grid = QGridLayout()
        grid.addWidget(self.decoded, 0, 0)
        grid.addWidget(self.original, 0, 1)
        grid.addWidget(self.scored, 0, 2)
        grid.addWidget(self.reconstruction, 0, 3)
        grid.addWidget(self.z_label, 1, 0)
        grid.addWidget(self.point_label, 1, 1)
        grid.addWidget(self.scored_label, 1, 2)
        grid.addWidget(self.recon_label, 1, 3)
        self._show_scored(None)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addWidget(self.mean_button)
        layout.addWidget(self.sample_button)

    @property
    def shows_sample(self) -> bool:
        return self.sample_button.isChecked()

    def show_decoded(self, z: tuple[float, float], image: np.ndarray,
                     note: str | None = None) -> None:
        """``z`` the plane point decoded; ``note`` what z that is when the latent has more
        than two dimensions (the plane shows a view of it)."""
        self.z = (float(z[0]), float(z[1]))
        self.decoded.set_image(image)
        what = "one sample x~p(x|z)" if self.shows_sample else "mean E[x|z]"
        where = note or f"z = ({self.z[0]:.2f}, {self.z[1]:.2f})"
        self.z_label.setText(f"{where}\n{what}")

    def show_datapoint(self, title: str, image: np.ndarray, reconstruction: np.ndarray,
                       x: np.ndarray | None = None) -> None:
        """``image`` the datapoint; ``x`` its x as every number scores it (shown beside the
        image when the two differ, e.g. a fixed binarisation)."""
        self.original.set_image(image)
        self.reconstruction.set_image(reconstruction)
        self.point_label.setText(title)
        self.recon_label.setText("reconstruction\nE[x|z = mu]")
        differs = x is not None and not np.array_equal(np.asarray(x, np.float32),
                                                       np.asarray(image, np.float32))
        self._show_scored(x if differs else None)

    def _show_scored(self, x: np.ndarray | None) -> None:
        self.scored.set_image(x)
        self.scored.setVisible(x is not None)
        self.scored_label.setVisible(x is not None)

    def clear_datapoint(self) -> None:
        self._show_scored(None)
        self.original.set_image(None)
        self.reconstruction.set_image(None)
        self.point_label.setText("click a point to select it")
        self.recon_label.setText("")

    def clear(self) -> None:
        """Nothing decoded, nothing selected: a new dataset."""
        self.clear_datapoint()
        self.z = None
        self.decoded.set_image(None)
        self.z_label.setText("click the plane to decode a z")
