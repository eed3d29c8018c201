"""Datasets, mixed into the main window: a source picked in the Datasets menu or dropped is
loaded in the background (explorer.qt.dataset_loader) with a progress dialog while training goes
on; once loaded it replaces the current one (the worker is stopped, waited for, and started
again on the new data) and every view of the old data is emptied.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QProgressDialog

from explorer.qt.dataset_loader import source_title
from trainer import KNOWN_DATASETS, Checkpoint, ImageDataset, Session

DATASET_FILTER = ("Datasets (*.npz *.npy *idx* *ubyte* *.gz);;"
                  "NumPy (*.npz *.npy);;IDX, as MNIST ships (*idx* *ubyte*);;All files (*)")


class DatasetActions:
    """Mixed into MainWindow: works on its loader, worker, views and ``dataset``."""

    def open_dataset(self, source: str, confirmed: bool = False, listing=None) -> None:
        """Load ``source`` ("digits", "mnist", "fashion-mnist", a folder or a file) in the
        background, with a progress dialog; training goes on until it has loaded.
        ``listing``: the folder's walk, when a drop made it (trainer.walk_folder)."""
        if self.loader.is_running():
            self.tell("Open dataset", f"{source_title(source)}: still loading "
                      f"{source_title(self.loader.source)}; cancel that first")
            return
        self._load_confirmed = confirmed
        self.loader.start(str(source), listing=listing)
        self._show_load_dialog(source_title(str(source)), "Open dataset")

    def _show_load_dialog(self, title: str, window_title: str) -> None:
        dialog = QProgressDialog(f"Loading {title}...", "Cancel", 0, 0, self)
        dialog.setWindowTitle(window_title)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)  # quick loads never flash a dialog
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.loader.cancel)
        self.load_dialog = dialog
        self.statusBar().showMessage(f"Loading {title}...")

    def _open_folder_dialog(self) -> None:
        folder = self._folder_name("Open a folder of images")
        if folder:
            self.open_dataset(folder)

    def _open_file_dialog(self) -> None:
        path = self._open_file_name("Open a dataset file", DATASET_FILTER)
        if path:
            self.open_dataset(path)

    def _on_load_progress(self, done: int, total: int) -> None:
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
        self.statusBar().clearMessage()

    def _finish_session_wait(self, kind: str, value) -> bool:
        """Hand a load's end to an Open session waiting for its dataset; True if one was."""
        wait = self._session_wait
        if wait is None:
            return False
        self._end_load()
        wait["result"] = (kind, value)
        wait["loop"].quit()
        return True

    def _on_dataset_loaded(self, dataset: ImageDataset) -> None:
        if self._finish_session_wait("loaded", dataset):
            return
        self._end_load()
        if self._closing:
            return
        if not (self._load_confirmed or self._offer_save_before_switch()):
            self.statusBar().showMessage(f"Still training on {self.dataset.name}", 6000)
            return
        self.switch_dataset(dataset)

    def _on_load_failed(self, message: str) -> None:
        if self._finish_session_wait("failed", message):
            return
        self._end_load()
        if not self._closing:
            self.tell("Could not open the dataset",
                      f"{message}\nStill training on {self.dataset.name}.")

    def _on_load_cancelled(self, message: str) -> None:
        if self._finish_session_wait("cancelled", message):
            return
        self._end_load()
        self.statusBar().showMessage(f"{message}; still training on {self.dataset.name}", 6000)

    def _offer_save_before_switch(self) -> bool:
        """Whether to go on with a dataset switch (the current run is lost): unsaved changes
        get Save / Discard / Cancel, a saved or untouched run a Yes / No question."""
        question = "Switch dataset? The current run will be discarded."
        if self.isWindowModified():
            return self._resolve_unsaved("Switch dataset", question)
        return self.confirm("Switch dataset", question)

    def switch_dataset(self, dataset: ImageDataset, checkpoint: Checkpoint | None = None
                       ) -> bool:
        """Train on ``dataset`` with the current settings (the live values in the controls,
        the same seed); or, with ``checkpoint``, resume that run paused (its own settings;
        device and threads from the preferences). The new run is built first: if that fails
        the current run goes on untouched, one message says why, and this returns False."""
        try:
            if checkpoint is None:
                config = self.config.replace(lr=self.controls.lr.value(),
                                             beta=self.controls.beta.value(),
                                             batch_size=self.controls.batch.value())
                clean_step = 0
                session = Session(dataset, config)
            else:
                config = checkpoint.config.replace(device=self.config.device,
                                                   threads=self.config.threads)
                clean_step = int(checkpoint.counters["step"])
                session = Session.from_checkpoint(checkpoint, dataset, device=config.device,
                                                  threads=config.threads, strict=False)
        except Exception as exc:  # noqa: BLE001 - a crafted file must not half-switch the window
            what = str(exc) if isinstance(exc, (ValueError, OSError)) and str(exc) else \
                f"{type(exc).__name__}: {exc}"
            source = dataset.source if checkpoint is None else checkpoint.path
            self.tell("Could not start the new run",
                      f"{source}: {what}\nStill training on {self.dataset.name}.")
            return False
        old = self.worker
        old.stop()
        for signal, slot in ((old.progressed, self._on_progress),
                             (old.snapshotted, self._on_snapshot), (old.failed, self._on_failed)):
            signal.disconnect(slot)
        # Results the old run sent before it stopped wait in the queue: drop them, so no
        # snapshot of the old data is drawn over the new. (Only the worker queues calls here.)
        QCoreApplication.removePostedEvents(self, QEvent.Type.MetaCall)
        self._draw_scheduled = False
        self.dataset = dataset
        self._end_save_wait()
        self.config = config
        self._clean_step = clean_step
        if checkpoint is not None:
            self.controls.set_config(self.config)
            self._running, self._started = False, True
        self.session_path = None  # a new run is untitled until saved (open sets it after)
        self.run_name = None
        self._reset_views()
        self.setWindowModified(False)
        self._failure = None  # a new worker: the old one's failure is no longer the state
        self.controls.set_running(self._running, self._started)
        self.worker = self._new_worker(start_paused=not self._running, session=session)
        if self._launched:
            self.worker.start()
        old.deleteLater()
        self.statusBar().showMessage(f"Training on {dataset.name}", 6000)
        return True

    def _reset_views(self) -> None:
        """Everything that showed the old dataset or its model, emptied for the new one."""
        dataset = self.dataset
        self._update_title()
        self._pending_restore = {}
        self.snapshot = self.model = self.progress = None
        self._pending_snapshot = self._pending_progress = None
        self.selected = None
        self._inputs = None
        self._hide_banner()
        self.inspector.clear()
        self._inspected = None
        self.trails.set_tracked([])
        self.colouring.labels = dataset.labels
        self.colouring.choose("label")
        view = self.latent_view
        view.set_selected(None)
        view.set_crosshair(None)
        empty = np.zeros((0, 2), np.float32)
        view.set_latents(empty, empty)
        view.set_dataset(dataset.labels, dataset.label_names)
        view.follow_data(True)
        panel = self.image_panel
        panel.clear_datapoint()
        panel.z = None
        panel.decoded.set_image(None)
        panel.z_label.setText("click the plane to decode a z")
        self.elbo_view.set_history({}, {}, {})
        self.dataset_panel.set_dataset(dataset, self.config)
        self.encoded_panel.set_dataset(dataset)  # the images, preprocessed for the new size
        self._clear_status_bar()
