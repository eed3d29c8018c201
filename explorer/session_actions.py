"""Sessions (``NAME.lexp``, explorer.session_file), mixed into the main window: the title
and its unsaved-changes mark, the view a session keeps, save / open / restore, the questions
that could lose work, autosave on quit, and the recently opened list.

Saving asks the worker for a checkpoint between steps and writes the file atomically; opening
restores the run paused, with its curves, encoded images, selection and view. Questions that
could lose work (Save / Discard / Cancel) go through ``_ask_unsaved`` and file pickers through
``_open_file_name`` / ``_save_file_name`` (on the window), so tests and scripts can answer them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import platformdirs
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from trainer import DataError, ImageDataset, load_source, save_checkpoint

from .dataset_actions import DATASET_FILTER
from .dataset_views import COLOURINGS
from .image_jobs import PreparedImage
from .manifold_view import MAX_GRID, MODES
from .session_file import (
    SUFFIX,
    LoadedSession,
    SessionFileError,
    SessionState,
    check_dataset,
    find_dataset,
    load_session,
    save_session,
)

SESSION_FILTER = f"Latent Explorer sessions (*{SUFFIX});;All files (*)"
MAX_RECENT = 8
SAVE_TIMEOUT_MS = 120_000  # the worker answers between steps; this only guards a hung one


def data_dir() -> Path:
    """Where the autosave lives (LATENT_EXPLORER_DATA overrides it, e.g. for tests)."""
    env = os.environ.get("LATENT_EXPLORER_DATA")
    return Path(env) if env else Path(platformdirs.user_data_dir("latent-explorer"))


def autosave_path() -> Path:
    return data_dir() / f"autosave{SUFFIX}"


def recent_list(settings: QSettings | None) -> list[str]:
    if settings is None:
        return []
    raw = settings.value("recent/files")
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)  # an ini list of one reads as str
    return [str(p) for p in items if p][:MAX_RECENT]


class SessionActions:
    """Mixed into MainWindow: works on its widgets, worker, settings and ``session_path``."""

    # ----------------------------------------------------------- title, changes
    def _session_name(self) -> str:
        if self.session_path is not None:
            return self.session_path.stem
        return self.run_name or "untitled"  # a --checkpoint run: its folder's name

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self._session_name()}[*] ({self.dataset.name}) - Latent Explorer")

    def _adopt_session_file(self, path: Path, step: int, modified: bool) -> None:
        """The run is now ``path`` as saved at ``step``: the title and recent list say so."""
        self.session_path = path
        self._clean_step = step
        self.setWindowModified(modified)
        self._update_title()
        self.add_recent(path)

    def _on_encoded_list_changed(self, *_) -> None:
        if not self._restoring:
            self.setWindowModified(True)

    # ------------------------------------------------------------- view state
    def view_state(self) -> dict:
        """What a session keeps of the view (JSON-able)."""
        return {"view_region": [float(v) for v in self.latent_view.view_region()],
                "sigma_level": self._sigma_level(), "manifold_mode": self.manifold_view.mode(),
                "manifold_grid": int(self.manifold_view.grid_box.value()),
                "colour_by": self.colouring.kind,
                "aggregate": bool(self.aggregate_action.isChecked())}

    def apply_view_state(self, view: dict) -> None:
        """Restore ``view_state()``; values a crafted file got wrong are skipped."""
        region = view.get("view_region")
        if (isinstance(region, list) and len(region) == 4
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in region)
                and region[0] < region[1] and region[2] < region[3]):
            self.latent_view.follow_data(False)
            self.latent_view.setRange(xRange=region[:2], yRange=region[2:], padding=0)
        level = view.get("sigma_level")
        if level in (1, 2) and not isinstance(level, bool):
            self.sigma_actions[level].setChecked(True)
            self._on_sigma_action()
        if view.get("manifold_mode") in MODES:
            self.manifold_view.set_mode(view["manifold_mode"])
        grid = view.get("manifold_grid")
        if isinstance(grid, int) and not isinstance(grid, bool) and 2 <= grid <= MAX_GRID:
            self.manifold_view.set_grid_size(grid)
        colour = view.get("colour_by")
        if colour in COLOURINGS:
            self.colouring.choose(colour)  # computed once the restored model's snapshot arrives
            self._pending_restore["colour"] = colour
        if isinstance(view.get("aggregate"), bool):
            self.aggregate_action.setChecked(view["aggregate"])
            self.aggregate.set_visible(view["aggregate"])

    # ----------------------------------------------------------------- saving
    def _write_checkpoint(self, folder: Path) -> str:
        """Write the current run's checkpoint into ``folder``: by the worker between steps
        (never racing the optimiser), or here when its thread has ended. "" or an error."""
        worker = self.worker
        if not worker.isRunning():
            if worker.session is None:
                return "no model to save yet"
            try:
                save_checkpoint(worker.session, folder)
            except (OSError, ValueError) as exc:
                return str(exc)
            return ""
        self._checkpoint_reply = None
        loop = QEventLoop()
        self._save_loop = loop
        worker.save_checkpoint(str(folder))
        QTimer.singleShot(SAVE_TIMEOUT_MS, loop.quit)
        if self._checkpoint_reply is None:
            loop.exec()  # the window keeps drawing while the worker writes
        self._save_loop = None
        reply = self._checkpoint_reply
        if reply is None:
            return "the training thread did not answer"
        return reply[1]

    def _on_checkpoint_saved(self, path: str, error: str) -> None:
        self._checkpoint_reply = (path, error)
        self._end_save_wait()

    def _end_save_wait(self) -> None:
        if self._save_loop is not None:
            self._save_loop.quit()

    def session_state(self, checkpoint_dir: Path) -> SessionState:
        selected = self.encoded_panel.selected()
        return SessionState(checkpoint=checkpoint_dir,
                            encoded=[e.image for e in self.encoded_panel.model.entries],
                            selected_encoded=selected if selected >= 0 else None,
                            selected_point=self.selected, view=self.view_state())

    def save_session_to(self, path: str | os.PathLike, show_errors: bool = True) -> bool:
        """Save the run, encoded images and view to ``path`` (atomically); True on success."""
        path = Path(path)
        if self._save_loop is not None:
            return False  # a save is already waiting for the worker
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.statusBar().showMessage(f"Saving {path}...")
        try:
            with tempfile.TemporaryDirectory(prefix="lexp-checkpoint-") as tmp:
                folder = Path(tmp) / "checkpoint"
                error = self._write_checkpoint(folder)
                if error:
                    raise SessionFileError(f"{path}: cannot save the checkpoint ({error})")
                run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
                save_session(path, self.session_state(folder))
        except (SessionFileError, OSError, ValueError) as exc:
            self.statusBar().clearMessage()
            if show_errors:
                self.tell("Could not save the session", str(exc))
            else:
                print(f"latent-explorer: {exc}", file=sys.stderr)
            return False
        finally:
            QApplication.restoreOverrideCursor()
        step = int(run["counters"]["step"])
        # Training may have stepped on while the worker wrote: then it is unsaved again.
        self._adopt_session_file(path, step, modified=self.progress is not None
                                 and self.progress.step != step)
        self.statusBar().showMessage(f"Session saved to {path}", 5000)
        return True

    def save_session(self) -> bool:
        """File > Save session: to the current file, or ask for one."""
        if self.session_path is None:
            return self.save_session_as()
        return self.save_session_to(self.session_path)

    def save_session_as(self) -> bool:
        path = self._save_file_name("Save session", f"{self._session_name()}{SUFFIX}",
                                    SESSION_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += SUFFIX
        return self.save_session_to(path)

    # ---------------------------------------------------------------- opening
    def _open_session_dialog(self) -> None:
        path = self._open_file_name("Open session", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | os.PathLike) -> bool:
        """Open a session file: a bad one is reported and the current run goes on."""
        try:
            loaded = load_session(path)
        except SessionFileError as exc:
            self.tell("Could not open the session", f"{exc}\nStill training on "
                      f"{self.dataset.name}.")
            return False
        dataset, reason = find_dataset(loaded)
        if dataset is None:
            dataset = self._locate_dataset(loaded, reason or "")
            if dataset is None:
                self.statusBar().showMessage(f"Not opened; still training on {self.dataset.name}",
                                             6000)
                return False
        if not self._resolve_unsaved("Open session",
                                     f"Open {Path(path).name}? The current run will be replaced."):
            return False
        try:
            self.restore_session(loaded, dataset)
        except SessionFileError as exc:
            self.tell("Could not open the session", str(exc))
            return False
        return True

    def _locate_dataset(self, loaded: LoadedSession, reason: str) -> ImageDataset | None:
        """Ask the user for the session's dataset until it matches (or they use it anyway,
        or cancel)."""
        shape = tuple(loaded.dataset_ref["image_shape"])
        while True:
            choice = self._ask_locate_dataset(loaded, reason)
            if not choice:
                return None
            try:
                dataset = load_source(choice)
            except (DataError, OSError) as exc:
                reason = str(exc)
                continue
            diffs = check_dataset(loaded, dataset)
            if not diffs:
                return dataset
            reason = f"{choice} differs from the dataset it was trained on: " + "; ".join(diffs)
            if tuple(dataset.image_shape) == shape and self.confirm(
                    "Use a different dataset?",
                    f"{reason}.\nContinue training on it anyway? The weights, optimiser and "
                    "history carry over; a fresh epoch order starts."):
                return dataset

    def _ask_locate_dataset(self, loaded: LoadedSession, reason: str) -> str | None:
        """Ask the user where the session's dataset is: a folder or a file, or None."""
        ref = loaded.dataset_ref
        box = QMessageBox(QMessageBox.Icon.Question, "Locate the dataset",
                          f"{loaded.path.name} was trained on {ref['name']} "
                          f"({ref['n']:,} images), which was not found as recorded.", parent=self)
        box.setInformativeText(reason)
        folder = box.addButton("Folder...", QMessageBox.ButtonRole.AcceptRole)
        file = box.addButton("File...", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is folder:
            return self._folder_name("Locate the dataset folder") or None
        if box.clickedButton() is file:
            return self._open_file_name("Locate the dataset file", DATASET_FILTER) or None
        return None

    def restore_session(self, loaded: LoadedSession, dataset: ImageDataset) -> None:
        """Replace the current run with the loaded one (paused), its encoded images,
        selection and view."""
        if self.loader.is_running():
            self.loader.cancel_and_wait()
            self._end_load()
        self.switch_dataset(dataset, checkpoint=loaded.checkpoint)
        self.restore_extras(loaded)

    def restore_extras(self, loaded: LoadedSession) -> None:
        """A session's encoded images, selection and view, on a window already running its
        checkpoint (``switch_dataset(..., checkpoint=)`` or ``MainWindow(checkpoint=)``)."""
        self._restoring = True
        try:
            model = self.encoded_panel.model
            model.clear()
            model.add([PreparedImage(r.name, r.source, r.grey, r.input, list(r.notes))
                       for r in loaded.encoded])
        finally:
            self._restoring = False
        if loaded.selected_encoded is not None:
            self.encoded_panel.select(loaded.selected_encoded)
        self.apply_view_state(loaded.view)
        if loaded.selected_point is not None:
            self._pending_restore["point"] = loaded.selected_point
        self._adopt_session_file(loaded.path, int(loaded.checkpoint.counters["step"]),
                                 modified=False)
        button = self.controls.start_button.text()  # "Resume": say what the button says
        self.statusBar().showMessage(f"Opened {loaded.path} (paused: press {button} to go on)",
                                     8000)

    # ---------------------------------------------------- work that could be lost
    def _ask_unsaved(self, title: str, question: str) -> str:
        """"save", "discard" or "cancel". A script that answers Yes/No questions through
        ``confirm`` gets the two-way form (Yes: discard)."""
        if self.confirm != self._ask:
            return "discard" if self.confirm(title, question) else "cancel"
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Warning, title, question,
                          buttons.Save | buttons.Discard | buttons.Cancel, self)
        box.setInformativeText(f"{self._session_name()} has unsaved changes (training or "
                               "encoded images). Save them as a session first?")
        box.setDefaultButton(buttons.Save)
        answer = box.exec()
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(
            buttons(answer), "cancel")

    def _resolve_unsaved(self, title: str, question: str) -> bool:
        """Whether to go on replacing or closing the run (saving it first if asked)."""
        if not self.isWindowModified():
            return True
        answer = self._ask_unsaved(title, question)
        if answer == "save":
            return self.save_session()
        return answer == "discard"

    def _keep_unsaved_work(self) -> bool:
        """On close: autosave (the default) or ask. False: the user cancelled the close."""
        if not self.isWindowModified() or self.worker.session is None:
            return True
        if self.prefs.autosave_on_quit:
            self.worker.stop()  # its thread has ended: the session is safe to save here
            path = self.session_path or autosave_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                print(f"latent-explorer: {path}: cannot autosave ({exc})", file=sys.stderr)
                return True
            self.save_session_to(path, show_errors=False)
            return True
        return self._resolve_unsaved("Quit", f"Quit? {self._session_name()} has unsaved "
                                             "changes.")


    # ------------------------------------------------------------ recent files
    def recent_files(self) -> list[str]:
        return recent_list(self._settings)

    def add_recent(self, path: str | os.PathLike) -> None:
        if self._settings is None:
            return
        path = str(Path(path).resolve())
        files = [path] + [p for p in self.recent_files() if p != path]
        self._settings.setValue("recent/files", files[:MAX_RECENT])
        self._settings.sync()
        self._rebuild_recent_menu()

    def clear_recent(self) -> None:
        if self._settings is not None:
            self._settings.remove("recent/files")
            self._settings.sync()
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.recent_files()
        for i, path in enumerate(files, 1):
            a = menu.addAction(f"&{i} {Path(path).name}")
            exists = Path(path).is_file()
            a.setEnabled(exists)  # greyed: moved or deleted since
            a.setToolTip(path if exists else f"{path} (missing)")
            a.setStatusTip(a.toolTip())
            a.triggered.connect(lambda _checked=False, p=path: self.open_session(p))
        if not files:
            empty = menu.addAction("(none)")
            empty.setEnabled(False)
            empty.setStatusTip("No session opened or saved yet")
        menu.addSeparator()
        clear = menu.addAction("Clear list")
        clear.setStatusTip("Forget the recently opened sessions")
        clear.setEnabled(bool(files))
        clear.triggered.connect(self.clear_recent)
