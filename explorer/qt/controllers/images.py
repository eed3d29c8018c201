"""Images the user brings: files dropped on the window or the plane, pasted, or picked with
File > Encode images... go to the "Encoded images" panel, whose markers the plane shows; a
dataset dropped by itself is offered for training; a session file dropped is opened.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget

from explorer.core.intake import Drop, read_drop
from explorer.core.session_file import SUFFIX
from explorer.qt.jobs import JobLane
from explorer.qt.views.encoded_images import EncodedImagesPanel
from explorer.qt.views.latent_view import LatentView
from trainer import IMAGE_SUFFIXES

IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)))
MAX_LISTED_PROBLEMS = 15  # "file: reason" lines in the message box; the panel keeps them all


class ImagesController:
    """Feeds the encoded-images panel and shows its markers on the plane. ``open_session`` and
    ``open_dataset(source, confirmed=True)`` take the drops that are not images."""

    def __init__(self, window, panel: EncodedImagesPanel, plane: LatentView, dock: QDockWidget,
                 open_session: Callable[[str], object],
                 open_dataset: Callable[..., object]):
        self.window = window
        self.panel = panel
        self.plane = plane
        self.dock = dock
        self._open_session = open_session
        self._open_dataset = open_dataset
        self.drops = JobLane(window, latest_wins=False)  # drops are read in turn
        self.drops.done.connect(self._open_drop)
        self.drops.failed.connect(lambda message: window.tell("Drop", message))
        plane.filesDropped.connect(self.open_paths)
        plane.markerSelected.connect(panel.select)
        panel.entrySelected.connect(self.show_markers)
        panel.model.changed.connect(self.show_markers)
        panel.messagesReady.connect(self.show_problems)

    def open_paths(self, paths: list) -> None:
        """Dropped (or pasted) files and folders: images are encoded; a dataset, dropped by
        itself, is offered for training."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if len(paths) == 1 and paths[0].lower().endswith(SUFFIX):
            self._open_session(paths[0])
            return
        self.drops.submit_polling(read_drop, paths)  # folders walked once, off the GUI thread

    def _open_drop(self, drop: Drop) -> None:
        if drop.kind == "images":
            self.panel.encode_files(drop.paths, drop.listings)
        elif drop.kind == "dataset":
            path = drop.paths[0]
            if self.window.confirm("Train on a new dataset",
                                   f"Train on {path}? (the current run stops)"):
                self._open_dataset(path, confirmed=True, listing=drop.listings.get(path))
        else:
            images = drop.images()
            if images:
                self.panel.encode_files(images, drop.listings)
            self.window.tell("Dataset not opened",
                             "Not opened as a dataset (drop a dataset file or folder by itself "
                             "to train on it):\n" + "\n".join(drop.datasets))

    def shutdown(self) -> None:
        """Stop reading drops and wait for the thread (the window's shutdown)."""
        self.drops.cancel_and_wait()

    def paste(self) -> None:
        """Ctrl+V: encode the clipboard's image (or the files copied in a file manager)."""
        clipboard = QGuiApplication.clipboard()
        image = clipboard.image()
        mime = clipboard.mimeData()
        if image.isNull() and mime is not None and mime.hasUrls():
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if paths:
                self.open_paths(paths)
                return
        if self.panel.add_qimage(image):  # a null image: the panel says so
            self.show_dock()

    def ask_and_encode(self) -> None:
        """File > Encode images...: pick image files and encode them."""
        paths = self.window.open_file_names("Encode images", f"{IMAGE_FILTER};;All files (*)")
        if paths:
            self.panel.encode_files(paths)
            self.show_dock()

    def show_dock(self) -> None:
        self.dock.show()
        self.dock.raise_()

    def show_markers(self, *_) -> None:
        mu, sigma, names = self.panel.model.markers()
        plane = self.window.current_run.plane
        if plane is not None and len(mu) and np.shape(mu)[-1] != 2:
            # Above 2-D: the markers in the plane's view, their ellipses' axis extents.
            mu = plane.to_view(mu)
            sigma = np.sqrt(np.einsum("ad,nd,ad->na", plane.view.P, np.square(sigma),
                                      plane.view.P))
        selected = self.panel.selected()
        self.plane.set_markers(mu, sigma, names, highlighted=selected if selected >= 0 else None)

    def show_problems(self, lines: list) -> None:
        shown = lines[:MAX_LISTED_PROBLEMS]
        more = len(lines) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more (listed in the Encoded images "
                                   "panel)" if more > 0 else "")
        self.window.tell("Encoded images", text)
        self.show_dock()
