"""Images the user brings, mixed into the main window: files dropped on the window or the
plane, pasted, or picked with File > Encode images... go to the "Encoded images" panel; a
dataset dropped by itself is offered for training; a session file dropped is opened.
"""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from explorer.core.intake import Drop, read_drop
from explorer.core.session_file import SUFFIX
from explorer.qt.jobs import JobLane
from explorer.qt.paint_guard import guarded
from trainer import IMAGE_SUFFIXES

IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)))
MAX_LISTED_PROBLEMS = 15  # "file: reason" lines in the message box; the panel keeps them all


class ImageActions:
    """Mixed into MainWindow: feeds its encoded-images panel and shows the markers."""

    def open_paths(self, paths: list) -> None:
        """Dropped (or pasted) files and folders: images are encoded; a dataset, dropped by
        itself, is offered for training."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if len(paths) == 1 and paths[0].lower().endswith(SUFFIX):
            self.open_session(paths[0])
            return
        self.drop_lane().submit_polling(read_drop, paths)  # folders walked once, off this thread

    def drop_lane(self) -> JobLane:
        """Reads drops in turn (explorer.core.intake.read_drop); ``_open_drop`` gets each."""
        if getattr(self, "_drop_lane", None) is None:
            self._drop_lane = JobLane(self, latest_wins=False)
            self._drop_lane.done.connect(self._open_drop)
            self._drop_lane.failed.connect(lambda message: self.tell("Drop", message))
        return self._drop_lane

    def shutdown_drops(self) -> None:
        """Stop reading drops and wait for the thread (the window's shutdown)."""
        if getattr(self, "_drop_lane", None) is not None:
            self._drop_lane.cancel_and_wait()

    def _open_drop(self, drop: Drop) -> None:
        if drop.kind == "images":
            self.encoded_panel.encode_files(drop.paths, drop.listings)
        elif drop.kind == "dataset":
            path = drop.paths[0]
            if self.confirm("Train on a new dataset",
                            f"Train on {path}? (the current run stops)"):
                self.open_dataset(path, confirmed=True, listing=drop.listings.get(path))
        else:
            images = drop.images()
            if images:
                self.encoded_panel.encode_files(images, drop.listings)
            self.tell("Dataset not opened",
                      "Not opened as a dataset (drop a dataset file or folder by itself to "
                      "train on it):\n" + "\n".join(drop.datasets))

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
        if self.encoded_panel.add_qimage(image):  # a null image: the panel says so
            self._show_encoded_dock()

    def _encode_images_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Encode images", "",
                                                f"{IMAGE_FILTER};;All files (*)")
        if paths:
            self.encoded_panel.encode_files(paths)
            self._show_encoded_dock()

    def _show_encoded_dock(self) -> None:
        dock = self.docks["encoded"]
        dock.show()
        dock.raise_()

    def _show_markers(self, *_) -> None:
        mu, sigma, names = self.encoded_panel.model.markers()
        selected = self.encoded_panel.selected()
        self.latent_view.set_markers(mu, sigma, names,
                                     highlighted=selected if selected >= 0 else None)

    def _show_image_problems(self, lines: list) -> None:
        shown = lines[:MAX_LISTED_PROBLEMS]
        more = len(lines) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more (listed in the Encoded images "
                                   "panel)" if more > 0 else "")
        self.tell("Encoded images", text)
        self._show_encoded_dock()

    # Drops on any part of the window but the plane (which handles its own) arrive here.
    @staticmethod
    def _local_paths(event) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    @guarded()
    def dragEnterEvent(self, event) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    @guarded()
    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    @guarded()
    def dropEvent(self, event) -> None:
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)
