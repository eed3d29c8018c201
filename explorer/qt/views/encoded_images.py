"""The images a user brought and their encodings: a list model, and a panel that shows it.

Wiring in the window (a few lines)::

    panel = EncodedImagesPanel()                 # a dock's widget; panel.model is the list
    panel.set_dataset(dataset)                   # again after each dataset switch
    panel.model.reencode(snapshot.model)         # with every latent snapshot
    panel.model.changed.connect(lambda: view.set_markers(*panel.model.markers(),
                                                         highlighted=panel.selected()))
    panel.entrySelected.connect(...)             # the same set_markers call, highlighted=i
    view.markerSelected.connect(panel.select)
    view.filesDropped -> read_drop(paths).kind == "images" -> panel.encode_files(paths, listings)
    Ctrl+V -> panel.add_qimage(QGuiApplication.clipboard().image())
    closeEvent -> panel.cancel_and_wait()
    panel.messagesReady -> show "file: reason" lines (status bar or a message box)

Speed: ``reencode`` is one batched ``encode`` call, for the markers. The list's details (the
reconstruction and the ELBO, averaged over a few samples) cost several forward passes, so they
are refreshed on a timer that keeps them under DETAILS_DUTY of the GUI thread's time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QPlainTextEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.inference_view import NewPointQ, q_for_new_points
from explorer.qt.image_jobs import ImageJob, PreparedImage, model_input, prepare_qimage
from explorer.qt.paint_guard import guarded
from explorer.qt.views.image_panel import to_qimage
from trainer import DataError, FolderListing, TrainConfig, fit_fraction
from trainer.evidence import evidence_input

MAX_ENTRIES = 1000  # markers and list rows beyond this help nobody and slow the plane
ELBO_SAMPLES = 4  # reparameterised draws averaged for the list's ELBO readout
DETAILS_MIN_INTERVAL_S = 0.5
DETAILS_DUTY = 0.05  # the details may take at most this fraction of the GUI thread's time
PROGRESS_DIALOG_MIN_FILES = 20  # more files than this: a progress dialog with Cancel
# Free and semi runs fit (or refine) each image's q by optimisation: at most this share of
# the GUI thread's time, at most once per FIT_MIN_INTERVAL_S (new images: at once).
FIT_DUTY = 0.1
FIT_MIN_INTERVAL_S = 2.0
TILE = 64  # px, each of the three images in a row's icon
GAP = 3
TILE_BACKGROUND = QColor(40, 40, 40)


@dataclass
class EncodedImage:
    """One entry: the image as read, and its encoding under the latest model (None before)."""

    image: PreparedImage
    mu: np.ndarray | None = None  # (2,)
    sigma: np.ndarray | None = None  # (2,)
    elbo: float | None = None  # nats per datapoint, higher is better
    recon: float | None = None  # E_q[log p(x|z)], nats
    kl: float | None = None  # KL(q(z|x) || p(z)), nats
    reconstruction: np.ndarray | None = None  # (H, W) or (H, W, 3), the decoder's mean at mu

    @property
    def name(self) -> str:
        return self.image.name


def elbo_label(likelihood: str | None) -> str:
    """Each image is scored on its one fixed x (trainer.evidence), so for a Bernoulli model
    too the ELBO bounds a log-probability."""
    return "ELBO (nats, higher is better)"


def _fit(image: QImage, side: int, smooth: bool) -> QImage:
    mode = (Qt.TransformationMode.SmoothTransformation if smooth
            else Qt.TransformationMode.FastTransformation)  # fast: model pixels stay square
    return image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, mode)


def row_icon(thumbnail: QImage, model_input: np.ndarray,
             reconstruction: np.ndarray | None) -> QPixmap:
    """Original, preprocessed input and reconstruction side by side, TILE px each, drawn
    at the screen's device pixel ratio so they stay sharp on high-DPI displays."""
    app = QGuiApplication.instance()
    dpr = app.devicePixelRatio() if app is not None else 1.0
    side = round(TILE * dpr)  # device pixels per tile
    gap = round(GAP * dpr)
    pix = QPixmap(3 * side + 2 * gap, side)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    tiles = [_fit(thumbnail, side, True), _fit(to_qimage(model_input), side, False)]
    if reconstruction is not None:
        tiles.append(_fit(to_qimage(reconstruction), side, False))
    for k in range(3):
        x = k * (side + gap)
        p.fillRect(x, 0, side, side, TILE_BACKGROUND)
        if k < len(tiles):
            t = tiles[k]
            p.drawImage(x + (side - t.width()) // 2, (side - t.height()) // 2, t)
    p.end()
    pix.setDevicePixelRatio(dpr)
    return pix


class EncodedImagesModel(QAbstractListModel):
    """The list of user images. ``changed`` fires when entries or their mu/sigma change."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._images: list[PreparedImage] = []
        self._thumbs: list[QImage] = []
        self._x: np.ndarray | None = None  # (M, D) every entry's x, built when needed
        self._x_rule: str | None = None  # the binarization _x was made with
        self._mu: np.ndarray | None = None  # (M, 2); all entries encoded, or none
        self._sigma: np.ndarray | None = None
        self._details: dict[str, np.ndarray] | None = None  # elbo/recon/kl (M,), images
        self._icons: dict[int, QIcon] = {}
        self._shape: tuple[int, ...] | None = None  # the dataset's stored shape
        self._fill: float | None = None
        self._invert: bool | None = None  # the dataset's polarity rule (None: per image)
        self._frozen = None
        self._config = None  # the run's TrainConfig: its inference mode decides how q is got
        self.q_cost: NewPointQ | None = None  # how the markers' q was obtained, and its time
        self._fit_at = -math.inf
        self._pasted = 0
        self._details_cost = 0.0
        self._details_at = -math.inf
        self._details_timer = QTimer(self)
        self._details_timer.setSingleShot(True)
        self._details_timer.timeout.connect(self.refresh_details)

    # ------------------------------------------------------------ the dataset's format
    @property
    def target(self) -> tuple[tuple[int, ...], float | None] | None:
        return None if self._shape is None else (self._shape, self._fill)

    def set_dataset(self, dataset) -> None:
        if dataset.inverted != self._invert:  # another polarity rule: preprocess again
            self._invert, self._shape = dataset.inverted, None
        fill = fit_fraction(dataset) if dataset.channels == 1 else None  # colour: whole frame
        self.set_target(dataset.stored_shape, fill)

    def set_target(self, shape: tuple[int, ...], fill: float | None) -> None:
        """Preprocess every entry again for a dataset of ``shape`` (its stored shape: (H, W)
        grey, (H, W, 3) colour) and ``fill``."""
        shape = tuple(int(s) for s in shape)
        if (shape, fill) == (self._shape, self._fill):
            return
        self.beginResetModel()
        self._shape, self._fill = shape, fill
        for im in self._images:
            self._prepare(im)
        if self._frozen is not None and tuple(self._frozen.stored_shape) != shape:
            self._frozen = None  # a model of another image size cannot encode these
        self._invalidate()
        self.endResetModel()
        self._encode_now()

    def _prepare(self, im: PreparedImage) -> None:
        """The model's input from the kept original, by the dataset's channels and (grey)
        polarity rule."""
        im.input = model_input(im.original, self._shape, self._fill, invert=self._invert)
        colour = len(self._shape) == 3  # colour images are pictures: no polarity rule
        if self._invert is not None or colour:
            im.notes = [n for n in im.notes if not n.startswith(("light background: inverted",
                                                                 "inverted, as"))]
            if self._invert and not colour:
                im.notes.append("inverted, as every image of the dataset was")

    # ------------------------------------------------------------ entries
    @property
    def entries(self) -> list[EncodedImage]:
        return [self.entry(i) for i in range(len(self._images))]

    def __len__(self) -> int:
        return len(self._images)

    def entry(self, i: int) -> EncodedImage:
        e = EncodedImage(self._images[i])
        if self._mu is not None:
            e.mu, e.sigma = self._mu[i].copy(), self._sigma[i].copy()
        if self._details is not None:
            d = self._details
            e.elbo, e.recon, e.kl = float(d["elbo"][i]), float(d["recon"][i]), float(d["kl"][i])
            e.reconstruction = d["reconstruction"][i]
        return e

    def add(self, images: Iterable[PreparedImage]) -> list[str]:
        """Append images; returns messages about any left out."""
        if self._shape is None:
            raise RuntimeError("set_dataset or set_target before adding images")
        images = list(images)
        room = MAX_ENTRIES - len(self._images)
        messages = []
        if len(images) > room:
            messages.append(f"only {MAX_ENTRIES} encoded images are kept: "
                            f"{len(images) - max(room, 0)} left out")
            images = images[:max(room, 0)]
        if not images:
            return messages
        for im in images:
            # Read for the dataset before a switch, or by its own border, not the dataset's rule.
            if im.input.shape != self._shape or self._invert is not None:
                self._prepare(im)
        first = len(self._images)
        self.beginInsertRows(QModelIndex(), first, first + len(images) - 1)
        self._images.extend(images)
        self._thumbs.extend(to_qimage(im.original) for im in images)
        self._invalidate()
        self.endInsertRows()
        self._encode_now()
        return messages

    def add_qimage(self, image: QImage) -> PreparedImage:
        """A pasted image, named "pasted image N"; raises DataError with the reason."""
        if self._shape is None:
            raise RuntimeError("set_dataset or set_target before adding images")
        self._pasted += 1
        prepared = prepare_qimage(image, f"pasted image {self._pasted}", self._shape,
                                  self._fill)
        self.add([prepared])
        return prepared

    def remove(self, i: int) -> None:
        if not 0 <= i < len(self._images):
            raise IndexError(f"no encoded image {i} (there are {len(self._images)})")
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._images[i], self._thumbs[i]
        keep = np.arange(len(self._images) + 1) != i
        if self._mu is not None:
            self._mu, self._sigma = self._mu[keep], self._sigma[keep]
        if self._details is not None:
            self._details = {k: v[keep] for k, v in self._details.items()}
        self._x = None
        self._icons.clear()
        self.endRemoveRows()
        self.changed.emit()

    def clear(self) -> None:
        self.beginResetModel()
        self._images.clear()
        self._thumbs.clear()
        self._invalidate()
        self.endResetModel()
        self.changed.emit()

    def markers(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(mu (M, 2), sigma (M, 2), names) for LatentView.set_markers; empty until encoded."""
        if self._mu is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), []
        return self._mu.copy(), self._sigma.copy(), [im.name for im in self._images]

    # ------------------------------------------------------------ encoding
    def _invalidate(self) -> None:
        self._x = None
        self._mu = self._sigma = self._details = None
        self._icons.clear()

    def _inputs(self) -> np.ndarray:
        """Every entry's x as the model scores it (trainer.evidence, keyed by its pixels, so
        the same file always gives the same x), the input its mu, sigma and ELBO are for."""
        rule = "none" if self._frozen is None else self._frozen.binarization
        if self._x is None or self._x_rule != rule:
            grey = np.stack([im.input.reshape(-1) for im in self._images]).astype(np.float32)
            self._x, self._x_rule = evidence_input(grey, rule), rule
            self._icons.clear()
        return self._x

    def _encode_now(self) -> None:
        if self._frozen is not None:
            self.reencode(self._frozen)
        else:
            self.changed.emit()

    def set_inference(self, config) -> None:
        """The run's config: a free-form run has no encoder for a new x, so its q is fitted
        (explorer.core.inference_view.q_for_new_points); a semi run's is refined."""
        if self._config is None or config.inference != self._config.inference:
            self._fit_at = -math.inf  # another mode: q again at the next reencode
        self._config = config

    def inference_note(self) -> str:
        """What obtaining the markers' q took, in one sentence ('' before any)."""
        return "" if self.q_cost is None else self.q_cost.sentence()

    def reencode(self, frozen) -> bool:
        """Encode every entry with ``frozen`` (a snapshot's FrozenVAE) in one batched call.
        False when the model is for another image size (a snapshot from before a switch)."""
        if self._shape is None or tuple(frozen.stored_shape) != self._shape:
            return False
        fresh_details = frozen is not self._frozen or self._details is None
        self._frozen = frozen
        if not self._images:
            return True
        mode = "amortized" if self._config is None else self._config.inference
        if mode == "amortized" or self._mu is None or self._fit_due():
            q = q_for_new_points(frozen.model, self._inputs(),
                                 self._config or TrainConfig())
            self._mu, self._sigma, self.q_cost = q.mu, q.sigma, q
            self._fit_at = time.monotonic()
        if fresh_details:
            self._schedule_details(now=self._details is None)
        last = self.index(len(self._images) - 1)
        self.dataChanged.emit(self.index(0), last, [Qt.ItemDataRole.DisplayRole,
                                                    Qt.ItemDataRole.ToolTipRole])
        self.changed.emit()
        return True

    def _fit_due(self) -> bool:
        cost = 0.0 if self.q_cost is None else self.q_cost.seconds
        interval = max(FIT_MIN_INTERVAL_S, cost / FIT_DUTY)
        return time.monotonic() - self._fit_at >= interval

    def _schedule_details(self, now: bool) -> None:
        if self._details_timer.isActive() and not now:
            return
        interval = max(DETAILS_MIN_INTERVAL_S, self._details_cost / DETAILS_DUTY)
        wait = 0.0 if now else self._details_at + interval - time.monotonic()
        self._details_timer.start(max(0, round(wait * 1000)))

    def details_pending(self) -> bool:
        return self._details_timer.isActive()

    def refresh_details(self) -> None:
        """Reconstructions and ELBO terms for every entry under the latest model."""
        self._details_timer.stop()
        if self._frozen is None or self._mu is None or not self._images:
            return
        t0 = time.perf_counter()
        terms = self._frozen.elbo(self._inputs(), samples=ELBO_SAMPLES)
        images = self._frozen.decode_mean(self._mu)
        self._details = {"elbo": np.asarray(terms["elbo"]), "recon": np.asarray(terms["recon"]),
                         "kl": np.asarray(terms["kl"]), "reconstruction": images}
        self._details_cost = time.perf_counter() - t0
        self._details_at = time.monotonic()
        self._icons.clear()
        self.dataChanged.emit(self.index(0), self.index(len(self._images) - 1))

    def elbo_label(self) -> str:
        return elbo_label(None if self._frozen is None else self._frozen.likelihood)

    # ------------------------------------------------------------ QAbstractListModel
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's API
        return 0 if parent.isValid() else len(self._images)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._images):
            return None
        i = index.row()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(i)
        if role == Qt.ItemDataRole.DecorationRole:
            if i not in self._icons:
                recon = None if self._details is None else self._details["reconstruction"][i]
                x = self._images[i].input if self._x is None else self._x[i]
                pix = row_icon(self._thumbs[i], x.reshape(self._images[i].input.shape), recon)
                icon = QIcon(pix)
                icon.addPixmap(pix, QIcon.Mode.Selected)  # no selection tint over the images
                self._icons[i] = icon
            return self._icons[i]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(i)
        return None

    def _text(self, i: int) -> str:
        lines = [self._images[i].name]
        if self._mu is None:
            lines.append("not encoded yet (waiting for the model)")
            return "\n".join(lines)
        m, s = self._mu[i], self._sigma[i]
        lines.append(f"mu ({m[0]:+.2f}, {m[1]:+.2f})")
        lines.append(f"sigma ({s[0]:.2f}, {s[1]:.2f})")
        if self._details is not None:
            # The value first, so a narrow dock elides the label, never the number.
            label = self.elbo_label().replace("ELBO (nats, ", "nats (")
            lines.append(f"ELBO {self._details['elbo'][i]:.1f} {label}")
        return "\n".join(lines)

    def _tooltip(self, i: int) -> str:
        im = self._images[i]
        lines = [im.source or im.name, "images: original | x, as scored | reconstruction"]
        if self._details is not None:
            d = self._details
            lines.append(f"reconstruction term E[log p(x|z)]: {d['recon'][i]:.2f} nats; "
                         f"KL(q(z|x) || p(z)): {d['kl'][i]:.2f} nats")
        lines += im.notes
        return "\n".join(lines)


class EncodedImagesPanel(QWidget):
    """The "Encoded images" dock: rows of original | input | reconstruction with mu, sigma and
    ELBO; Remove (or Delete) and Clear; a box for files that could not be read."""

    entrySelected = Signal(int)  # the selected row, -1 when none
    messagesReady = Signal(list)  # new "file: reason" lines after a read

    def __init__(self, model: EncodedImagesModel | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model or EncodedImagesModel(self)
        self._messages: list[str] = []
        self._pending: list[tuple[list[str], Mapping | None]] = []
        self._dialog: QProgressDialog | None = None
        self.job = ImageJob(self)
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_job_finished)

        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setIconSize(QSize(3 * TILE + 2 * GAP, TILE))
        self.list.setUniformItemSizes(True)
        self.list.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.list.selectionModel().currentChanged.connect(self._on_current_changed)
        self.model.modelReset.connect(lambda: self._on_current_changed(self.list.currentIndex()))
        self.hint = QLabel("Drop images on the latent plane, or paste one (Ctrl+V).")
        self.hint.setWordWrap(True)
        # How this run's inference got the images' q, and what it cost (free-form: a fit).
        self.cost = QLabel()
        self.cost.setWordWrap(True)
        self.model.changed.connect(lambda: self.cost.setText(self.model.inference_note()))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.model.clear)
        self.list.installEventFilter(self)  # Delete / Backspace removes the selected row
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        self.problems.setMaximumHeight(90)
        self.problems.setPlaceholderText("Files that could not be read are listed here.")

        buttons = QHBoxLayout()
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hint)
        layout.addWidget(self.cost)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.problems)
        self.model.changed.connect(self._update_buttons)
        self._update_buttons()

    # ------------------------------------------------------------ dataset and images
    def set_dataset(self, dataset) -> None:
        self.model.set_dataset(dataset)

    def encode_files(self, paths: Iterable[str],
                     listings: Mapping[str, FolderListing] | None = None) -> None:
        """Read files and folders in the background; more files wait for a running read.
        ``listings``: folders among ``paths`` already walked (a drop), not walked again."""
        paths = [str(p) for p in paths]
        if self.model.target is None:
            self._report([f"{p}: no dataset is loaded yet to encode it for" for p in paths])
            return
        if self.job.is_running():
            self._pending.append((paths, listings))
            return
        shape, fill = self.model.target
        self.job.start(paths, shape, fill, listings)

    def add_qimage(self, image: QImage) -> bool:
        """Encode a pasted image; False (and a message) when it cannot be used."""
        if self.model.target is None:
            self._report(["pasted image: no dataset is loaded yet to encode it for"])
            return False
        try:
            self.model.add_qimage(image)
        except DataError as e:
            self._report([str(e)])
            return False
        return True

    def cancel_and_wait(self, msecs: int = 10_000) -> bool:
        """Stop any read and wait for its thread (closing the window mid-read)."""
        self._pending.clear()
        return self.job.cancel_and_wait(msecs)

    def messages(self) -> list[str]:
        """Every "file: reason" message so far."""
        return list(self._messages)

    def progress_dialog(self) -> QProgressDialog | None:
        return self._dialog

    def _report(self, messages: list[str]) -> None:
        if not messages:
            return
        self._messages += messages
        self.problems.appendPlainText("\n".join(messages))
        self.messagesReady.emit(list(messages))

    def _on_progress(self, done: int, total: int) -> None:
        if self._dialog is None and total > PROGRESS_DIALOG_MIN_FILES:
            self._dialog = QProgressDialog("Reading images...", "Cancel", 0, total, self)
            self._dialog.setWindowTitle("Encode images")
            self._dialog.setMinimumDuration(300)
            self._dialog.setAutoClose(False)
            self._dialog.setAutoReset(False)
            self._dialog.canceled.connect(self.job.cancel)
        if self._dialog is not None:
            self._dialog.setLabelText(f"Reading image {done} of {total}...")
            self._dialog.setValue(done)

    def _on_job_finished(self, images: list, messages: list) -> None:
        if self._dialog is not None:
            self._dialog.canceled.disconnect(self.job.cancel)
            self._dialog.close()
            self._dialog.deleteLater()
            self._dialog = None
        self._report(list(messages) + self.model.add(images))
        if self._pending:
            self.encode_files(*self._pending.pop(0))

    # ------------------------------------------------------------ selection
    def selected(self) -> int:
        i = self.list.currentIndex()
        return i.row() if i.isValid() and self.list.selectionModel().isSelected(i) else -1

    def select(self, i: int) -> None:
        """Select row ``i`` (-1: none), as when its marker is picked on the plane; emits
        entrySelected only when the selection changes."""
        if i == self.selected():
            return
        sm = self.list.selectionModel()
        if 0 <= i < self.model.rowCount():
            index = self.model.index(i)
            sm.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.list.scrollTo(index)
        else:
            sm.clear()  # emits currentChanged with an invalid index

    def remove_selected(self) -> None:
        i = self.selected()
        if i >= 0:
            self.model.remove(i)

    @guarded(False)
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (watched is self.list and event.type() == QEvent.Type.KeyPress
                and (event.matches(QKeySequence.StandardKey.Delete)
                     or event.key() == Qt.Key.Key_Backspace)):
            self.remove_selected()
            return True
        return super().eventFilter(watched, event)

    def _on_current_changed(self, current: QModelIndex, _previous=None) -> None:
        self._update_buttons()
        self.entrySelected.emit(current.row() if current.isValid() else -1)

    def _update_buttons(self) -> None:
        n = self.model.rowCount()
        self.hint.setVisible(n == 0)
        self.clear_button.setEnabled(n > 0)
        self.remove_button.setEnabled(self.selected() >= 0)
