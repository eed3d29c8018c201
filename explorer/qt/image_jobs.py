"""Reading the images a user brings (files, folders, the clipboard) without freezing the GUI.

Every image goes through the trainer's preprocessing (``preprocess_image`` for a grey dataset,
``preprocess_colour`` for a colour one), so it reaches the model the way the dataset did, with
the dataset's channels: a colour file becomes its luma for a grey dataset, a grey file fills
all three channels alike for a colour one. Reading runs on a worker thread (superqt's
``thread_worker``), one file at a time: each file reports progress, a bad file becomes a
"file: reason" message and the others go on, and a cancel stops at the next file. Which files
a folder holds is trainer.folders' rule (explorer.core.intake.expand_paths); what a drop
means is explorer.core.intake's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from explorer.core.intake import expand_paths
from explorer.qt.jobs import JobLane
from trainer import (
    DataError,
    FolderListing,
    ink_on_dark,
    preprocess_image,
    read_colour,
    read_image,
)
from trainer.images import preprocess_colour

KEPT_SIDE = 256  # the original is kept at most this big: a thumbnail and re-preprocessing
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as trainer.read_image


def channels_of(shape: tuple[int, ...]) -> int:
    """A target's channels from its stored shape: (H, W) grey, (H, W, 3) RGB."""
    return 1 if len(shape) == 2 else int(shape[2])


def as_channels(original: np.ndarray, channels: int) -> np.ndarray:
    """A kept original (uint8 (h, w) or (h, w, 3)) as float32 in [0, 1] with ``channels``:
    grey in three equal channels, or colour as its luma (read_image's rule)."""
    a = np.asarray(original, np.float32) / 255
    if channels == 3:
        return a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1)
    return a if a.ndim == 2 else np.clip(a @ LUMA, 0, 1)


def model_input(original: np.ndarray, shape: tuple[int, ...], fill: float | None,
                invert: bool | None = None) -> np.ndarray:
    """What the model is given for a kept original, in a dataset's format ``shape`` ((H, W)
    grey, by ``fill`` and the polarity rule ``invert``; or (H, W, 3) colour, whole frame)."""
    if channels_of(shape) == 3:
        return preprocess_colour(as_channels(original, 3), tuple(shape[:2]))
    return preprocess_image(as_channels(original, 1), tuple(shape), fill, invert=invert)


@dataclass
class PreparedImage:
    """One user image, read and preprocessed for the current dataset."""

    name: str  # what the list and the plane show: the file name, or "pasted image N"
    source: str | None  # the file's path; None for a pasted image
    original: np.ndarray  # uint8 (h, w) grey or (h, w, 3) RGB, at most KEPT_SIDE px a side
    input: np.ndarray  # float32 (H, W) or (H, W, 3) in [0, 1]: exactly what the model is given
    notes: list[str] = field(default_factory=list)  # what reading changed, e.g. "animated: ..."


def _kept(pixels: np.ndarray) -> np.ndarray:
    """The original (grey or RGB floats) shrunk (area averaging) to at most KEPT_SIDE a
    side, as uint8."""
    h, w = pixels.shape[:2]
    s = min(1.0, KEPT_SIDE / max(h, w))
    img = Image.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    if s < 1:
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return np.asarray(img, np.uint8).copy()


def prepare_pixels(pixels: np.ndarray, name: str, source: str | None,
                   shape: tuple[int, ...], fill: float | None,
                   notes: list[str] | None = None) -> PreparedImage:
    """An image read for a target ``shape``'s channels (grey (h, w) or RGB (h, w, 3) floats)
    preprocessed to it."""
    notes = list(notes or [])
    if pixels.ndim == 2:
        if ink_on_dark(np.clip(pixels, 0, 1))[1]:  # the test preprocess_image applies, told here
            notes.append("light background: inverted to bright ink on black, as the data")
        model_x = preprocess_image(pixels, tuple(shape), fill)
    else:
        model_x = preprocess_colour(pixels, tuple(shape[:2]))
    return PreparedImage(name=name, source=source, original=_kept(pixels), input=model_x,
                         notes=notes)


def _read_for(path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    return read_colour(path) if channels_of(shape) == 3 else read_image(path)


def prepare_file(path: str | os.PathLike, shape: tuple[int, ...],
                 fill: float | None) -> PreparedImage:
    """Read and preprocess one file for a dataset of ``shape`` ((H, W) grey or (H, W, 3)
    colour); raises trainer.ImageError naming the file and reason."""
    pixels, notes = _read_for(path, shape)
    return prepare_pixels(pixels, Path(path).name, str(path), shape, fill, notes)


def prepare_qimage(image: QImage, name: str, shape: tuple[int, ...],
                   fill: float | None) -> PreparedImage:
    """A clipboard image: written as PNG to a temporary folder and read like any file, so
    alpha, 16-bit and palette images are handled exactly as read_image handles them."""
    if image.isNull():
        raise DataError(f"{name}: the clipboard holds no image")
    with tempfile.TemporaryDirectory(prefix="latent-explorer-") as tmp:
        path = Path(tmp) / "pasted.png"
        if not image.save(str(path), "PNG"):
            raise DataError(f"{name}: could not convert the clipboard image to PNG")
        pixels, notes = _read_for(path, shape)
    return prepare_pixels(pixels, name, None, shape, fill, notes)


# ---------------------------------------------------------------- the background job

@dataclass
class JobUpdate:
    """What the worker yields after each file: progress, and the file's image or message."""

    done: int
    total: int
    image: PreparedImage | None = None
    message: str | None = None


def iter_prepared(paths: Iterable[str | os.PathLike], shape: tuple[int, ...],
                  fill: float | None, listings: Mapping[str, FolderListing] | None = None
                  ) -> Iterator[JobUpdate]:
    """The work itself, plain Python: expand folders (those in ``listings`` are walked
    already), then read one file per step."""
    files, messages = expand_paths(paths, listings)
    total = len(files)
    for m in messages:
        yield JobUpdate(0, total, message=m)
    yield JobUpdate(0, total)
    for i, path in enumerate(files):
        try:
            yield JobUpdate(i + 1, total, image=prepare_file(path, shape, fill))
        except DataError as e:  # ImageError is one: "file: reason" already
            yield JobUpdate(i + 1, total, message=str(e))
        except Exception as e:  # noqa: BLE001 - one odd file must never stop the others
            yield JobUpdate(i + 1, total, message=f"{path}: unexpected error "
                                                  f"({type(e).__name__}: {e})")


class ImageJob(QObject):
    """Reads many files on a worker thread (a JobLane). ``finished(images, messages)`` comes
    once, also after a cancel, with what was read until then."""

    progress = Signal(int, int)  # done, total
    finished = Signal(list, list)  # [PreparedImage], ["file: reason"]

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lane = JobLane(self)
        self._lane.progress.connect(self._on_update)
        self._lane.done.connect(self._on_end)
        self._lane.cancelled.connect(self._on_end)
        self._lane.failed.connect(self._on_failed)
        self._running = False
        self.images: list[PreparedImage] = []
        self.messages: list[str] = []
        self.cancelled = False

    def start(self, paths: Iterable[str | os.PathLike], shape: tuple[int, ...],
              fill: float | None, listings: Mapping[str, FolderListing] | None = None) -> None:
        """Read ``paths``; ``listings``: folders among them already walked (a drop)."""
        if self.is_running():
            raise RuntimeError("this job is already running")
        self.images, self.messages, self.cancelled = [], [], False
        self._running = True
        self._lane.submit(iter_prepared, list(paths), tuple(shape), fill, listings)

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        if self._running:
            self.cancelled = True
            self._lane.cancel()  # honoured before the next file

    def cancel_and_wait(self, msecs: int = 10_000) -> bool:
        """Stop and wait for the thread (closing the app mid-job); True when it ended."""
        self.cancel()
        return self._lane.cancel_and_wait(msecs)

    def _on_update(self, update: JobUpdate) -> None:
        if update.image is not None:
            self.images.append(update.image)
        if update.message is not None:
            self.messages.append(update.message)
        self.progress.emit(update.done, update.total)

    def _on_failed(self, message: str) -> None:
        self.messages.append(f"reading stopped: {message}")
        self._on_end()

    def _on_end(self, *_) -> None:
        self._running = False
        if self.cancelled:
            self.messages.append(f"cancelled: {len(self.images)} image(s) read before the cancel")
        self.finished.emit(self.images, self.messages)


def encode_files(paths: Iterable[str | os.PathLike], shape: tuple[int, ...],
                 fill: float | None, parent: QObject | None = None) -> ImageJob:
    """Start reading ``paths`` (files and folders) for a dataset of ``shape`` (its stored
    shape: (H, W) grey, (H, W, 3) colour) and ``fill``; returns the running job."""
    job = ImageJob(parent)
    job.start(paths, shape, fill)
    return job
