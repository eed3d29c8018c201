"""Datasets: a source picked in the Datasets menu or dropped is loaded in the background
(explorer.qt.dataset_loader) with a progress dialog while training goes on; once loaded it
replaces the current run (a new worker trains on the new data) and every view of the old data
is emptied. An Open session waits for its dataset here too (``load_and_wait``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtWidgets import QProgressDialog

from explorer.qt.dataset_loader import DatasetLoader, source_title
from trainer import KNOWN_DATASETS, Checkpoint, ImageDataset, Session

DATASET_FILTER = ("Datasets (*.npz *.npy *idx* *ubyte* *.gz);;"
                  "NumPy (*.npz *.npy);;IDX, as MNIST ships (*idx* *ubyte*);;All files (*)")


class DatasetsController:
    """Loads datasets and switches the run to them. ``views`` are the window's panels that
    show the data (emptied on a switch); ``resolve_unsaved(title, question)`` asks before the
    current run is discarded; ``new_run(clean_step)`` tells the sessions the run is new."""

    def __init__(self, window, views, resolve_unsaved: Callable[[str, str], bool],
                 new_run: Callable[[int], None]):
        self.window = window
        self.state = window.state
        self.views = views
        self._resolve_unsaved = resolve_unsaved
        self._new_run = new_run
        self.load_dialog: QProgressDialog | None = None
        self._confirmed = False  # the drop's own question already asked about the switch
        self._wait: dict | None = None  # a load_and_wait waiting for its result
        self.loader = DatasetLoader(window)
        self.loader.progress.connect(self._on_progress)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.loader.cancelled.connect(self._on_cancelled)

    # --------------------------------------------------------------- loading
    def open_dataset(self, source: str, confirmed: bool = False, listing=None) -> None:
        """Load ``source`` ("digits", "mnist", "fashion-mnist", a folder or a file) in the
        background, with a progress dialog; training goes on until it has loaded.
        ``listing``: the folder's walk, when a drop made it (trainer.walk_folder)."""
        if self.loader.is_running():
            self.window.tell("Open dataset", f"{source_title(source)}: still loading "
                             f"{source_title(self.loader.source)}; cancel that first")
            return
        self._confirmed = confirmed
        self.loader.start(str(source), listing=listing)
        self._show_dialog(source_title(str(source)), "Open dataset")

    def ask_folder(self) -> None:
        folder = self.window.folder_name("Open a folder of images")
        if folder:
            self.open_dataset(folder)

    def ask_file(self) -> None:
        path = self.window.open_file_name("Open a dataset file", DATASET_FILTER)
        if path:
            self.open_dataset(path)

    def load_and_wait(self, title: str, job, window_title: str = "Open session"
                      ) -> tuple[str, object]:
        """Run ``job(progress=, cancelled=)`` on the loader's thread with its progress dialog,
        waiting in an event loop (the window keeps drawing, training goes on): ("loaded",
        result), ("failed", one line) or ("cancelled", why)."""
        if self.loader.is_running():
            self.window.tell(window_title, f"Still loading {source_title(self.loader.source)}; "
                             "cancel that first")
            return "cancelled", "another load is running"
        wait = {"loop": QEventLoop(), "result": None}
        self._wait = wait
        try:
            self.loader.start(title, job=job)
            self._show_dialog(title, window_title)
            if wait["result"] is None:
                wait["loop"].exec()
        finally:
            self._wait = None
        return wait["result"] or ("cancelled", "")

    def cancel_load(self) -> None:
        """Stop a running load and wait for its thread; a waiting ``load_and_wait`` returns."""
        self.loader.cancel_and_wait()
        self._finish_wait("cancelled", "closing")
        self._end_load()

    def _show_dialog(self, title: str, window_title: str) -> None:
        dialog = QProgressDialog(f"Loading {title}...", "Cancel", 0, 0, self.window)
        dialog.setWindowTitle(window_title)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)  # quick loads never flash a dialog
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.loader.cancel)
        self.load_dialog = dialog
        self.window.status(f"Loading {title}...")

    def _on_progress(self, done: int, total: int) -> None:
        dialog = self.load_dialog
        if dialog is None:
            return
        source = self.loader.source
        if source in KNOWN_DATASETS:
            mb = 1024 * 1024
            what = (f"{done / mb:.1f} of {total / mb:.1f} MB" if total
                    else f"{done / mb:.1f} MB")
            dialog.setLabelText(f"Downloading {source_title(source)}: {what}")
            # Bytes fit an int up to 2 GB; kilobytes keep the bar safe beyond that.
            done, total = done // 1024, total // 1024
        else:
            dialog.setLabelText(f"Reading {done:,} of {total:,} images..." if total
                                else f"Loading {source_title(source)}...")
        if total > 0:
            dialog.setMaximum(total)
            dialog.setValue(min(done, total))

    def _end_load(self) -> None:
        dialog, self.load_dialog = self.load_dialog, None
        if dialog is not None:
            dialog.canceled.disconnect(self.loader.cancel)  # closing emits canceled
            dialog.close()
            dialog.deleteLater()
        self.window.status("")

    def _finish_wait(self, kind: str, value) -> bool:
        """Hand a load's end to a waiting ``load_and_wait``; True if one was waiting."""
        wait = self._wait
        if wait is None:
            return False
        self._end_load()
        wait["result"] = (kind, value)
        wait["loop"].quit()
        return True

    def _on_loaded(self, dataset: ImageDataset) -> None:
        if self._finish_wait("loaded", dataset):
            return
        self._end_load()
        if self.window.closing:
            return
        if not (self._confirmed or self._offer_save_before_switch()):
            self.window.status(f"Still training on {self.state.current.dataset.name}", 6000)
            return
        self.switch_dataset(dataset)

    def _on_failed(self, message: str) -> None:
        if self._finish_wait("failed", message):
            return
        self._end_load()
        if not self.window.closing:
            self.window.tell("Could not open the dataset",
                             f"{message}\nStill training on {self.state.current.dataset.name}.")

    def _on_cancelled(self, message: str) -> None:
        if self._finish_wait("cancelled", message):
            return
        self._end_load()
        self.window.status(f"{message}; still training on {self.state.current.dataset.name}",
                           6000)

    def _offer_save_before_switch(self) -> bool:
        """Whether to go on with a dataset switch (the current run is lost): unsaved changes
        get Save / Discard / Cancel, a saved or untouched run a Yes / No question."""
        question = "Switch dataset? The current run will be discarded."
        if self.window.isWindowModified():
            return self._resolve_unsaved("Switch dataset", question)
        return self.window.confirm("Switch dataset", question)

    # ------------------------------------------------------------- switching
    def switch_dataset(self, dataset: ImageDataset, checkpoint: Checkpoint | None = None
                       ) -> bool:
        """Train on ``dataset`` with the current settings (the live values in the controls,
        the same seed); or, with ``checkpoint``, resume that run paused (its own settings;
        device and threads from the preferences). The new run is built first: if that fails
        the current run goes on untouched, one message says why, and this returns False."""
        window = self.window
        try:
            if checkpoint is None:
                controls = self.views.controls
                config = window.current_run.config().replace(lr=controls.lr.value(),
                                               beta=controls.beta.value(),
                                               batch_size=controls.batch.value())
                clean_step = 0
                session = Session(dataset, config)
            else:
                config = checkpoint.config.replace(**window.current_run.placement)
                clean_step = int(checkpoint.counters["step"])
                session = Session.from_checkpoint(checkpoint, dataset, device=config.device,
                                                  threads=config.threads, strict=False)
        except Exception as exc:  # noqa: BLE001 - a crafted file must not half-switch the window
            what = str(exc) if isinstance(exc, (ValueError, OSError)) and str(exc) else \
                f"{type(exc).__name__}: {exc}"
            source = dataset.source if checkpoint is None else checkpoint.path
            window.tell("Could not start the new run",
                        f"{source}: {what}\nStill training on {self.state.current.dataset.name}.")
            return False
        window.current_run.start_run(dataset, config, session, resumed=checkpoint is not None)
        self._reset_views(dataset, config)
        self._new_run(clean_step)
        window.status(f"Training on {dataset.name}", 6000)
        return True

    def _reset_views(self, dataset: ImageDataset, config) -> None:
        """Everything that showed the old dataset or its model, emptied for the new one."""
        v = self.views
        v.inspector.clear()
        v.trails.set_tracked([])
        v.colouring.labels = dataset.labels
        v.colouring.set_factors(dataset.factors)
        v.colouring.choose("label")
        plane = v.latent_view
        plane.set_selected(None)
        plane.set_crosshair(None)
        empty = np.zeros((0, 2), np.float32)
        plane.set_latents(empty, empty)
        plane.set_dataset(dataset.labels, dataset.label_names)
        plane.follow_data(True)
        v.image_panel.clear()
        v.elbo_view.set_history({}, {}, {})
        v.dataset_panel.set_dataset(dataset, config)
        v.encoded_panel.set_dataset(dataset)  # the images, preprocessed for the new size
        self.window.current_run.clear_figures()
