"""Sessions (``NAME.lexp``, explorer.core.session_file), mixed into the main window: the title
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
from datetime import datetime
from pathlib import Path

import platformdirs
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from explorer.core.session_file import (
    SUFFIX,
    LoadedSession,
    SessionFileError,
    SessionState,
    check_dataset,
    find_dataset,
    load_session,
    save_session,
)
from explorer.qt.dataset_actions import DATASET_FILTER
from explorer.qt.dataset_loader import source_title
from explorer.qt.image_jobs import PreparedImage
from explorer.qt.views.dataset_views import COLOURINGS
from explorer.qt.views.manifold_view import MAX_GRID, MODES
from trainer import ImageDataset, atomic_write, load_source, save_checkpoint
from trainer.atomic import staging_dir
from trainer.checkpoint import read_run_json

SESSION_FILTER = f"Latent Explorer sessions (*{SUFFIX});;All files (*)"
MAX_RECENT = 8
SAVE_TIMEOUT_MS = 120_000  # the worker answers between steps; this only guards a hung one


def data_dir() -> Path:
    """Where the autosave lives (LATENT_EXPLORER_DATA overrides it, e.g. for tests)."""
    env = os.environ.get("LATENT_EXPLORER_DATA")
    return Path(env) if env else Path(platformdirs.user_data_dir("latent-explorer"))


def autosave_path() -> Path:
    """The recovery file: what quitting with unsaved work writes (never the named session)."""
    return data_dir() / f"autosave{SUFFIX}"


def recovery_notes_path() -> Path:
    """Beside the recovery file: when it was written and which named session it came from."""
    return data_dir() / "autosave.json"


def read_recovery() -> dict | None:
    """The recovery file's notes ({"saved_at": ISO time, "session_path": str | None}) when a
    recovery file is waiting to be offered, else None."""
    if not autosave_path().is_file():
        return None
    try:
        notes = json.loads(recovery_notes_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        notes = {}
    if not isinstance(notes, dict):
        notes = {}
    saved_at = notes.get("saved_at")
    try:
        saved = datetime.fromisoformat(saved_at) if isinstance(saved_at, str) else None
    except ValueError:
        saved = None
    if saved is None:
        saved = datetime.fromtimestamp(autosave_path().stat().st_mtime)
    original = notes.get("session_path")
    return {"saved_at": saved, "session_path": original if isinstance(original, str) else None}


def discard_recovery() -> None:
    for path in (autosave_path(), recovery_notes_path()):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


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

    def _write_session(self, path: Path) -> tuple[int | None, str]:
        """Write the session file ``path`` atomically: (the step saved, "") or (None, why)."""
        if self._save_loop is not None:
            return None, f"{path}: another save is still waiting for the training thread"
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.statusBar().showMessage(f"Saving {path}...")
        try:
            # Staged beside the session (same file system, swept when stale), not in $TMPDIR,
            # where a kill -9 mid-save left the checkpoint's weights behind for good.
            with staging_dir(path) as tmp:
                folder = tmp / "checkpoint"
                error = self._write_checkpoint(folder)
                if error:
                    raise SessionFileError(f"{path}: cannot save the checkpoint ({error})")
                run = read_run_json(folder)
                save_session(path, self.session_state(folder))
        except (SessionFileError, OSError, ValueError) as exc:
            self.statusBar().clearMessage()
            message = str(exc)
            if isinstance(exc, OSError) and str(path) not in message:
                message = f"{path}: {message}"
            return None, message
        finally:
            QApplication.restoreOverrideCursor()
            if self._close_after_save:  # a close arrived during the save: do it now
                self._close_after_save = False
                QTimer.singleShot(0, self.close)
        return int(run["counters"]["step"]), ""

    def save_session_to(self, path: str | os.PathLike, show_errors: bool = True) -> bool:
        """Save the run, encoded images and view to ``path`` (atomically); True on success."""
        path = Path(path)
        step, error = self._write_session(path)
        if error:
            if show_errors:
                self.tell("Could not save the session", error)
            else:
                print(f"latent-explorer: {error}", file=sys.stderr)
            return False
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
        found = self._find_session_dataset(loaded)
        if found is None:  # cancelled, or the window is closing
            if not self._closing:
                self.statusBar().showMessage(
                    f"Not opened; still training on {self.dataset.name}", 6000)
            return False
        dataset, reason = found
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
            return self.restore_session(loaded, dataset)
        except SessionFileError as exc:
            self.tell("Could not open the session", str(exc))
            return False

    def _find_session_dataset(self, loaded: LoadedSession
                              ) -> tuple[ImageDataset | None, str | None] | None:
        """find_dataset in the background (a 20,000-image folder froze the window for 20 s
        on this thread), with the Datasets menu's progress dialog and Cancel; this waits in
        an event loop, so the window keeps drawing and training goes on. None: cancelled."""
        def job(progress, cancelled):
            return find_dataset(loaded, progress=progress, cancelled=cancelled)

        kind, value = self._load_and_wait(f"the dataset of {loaded.path.name}", job)
        if kind == "loaded":
            return value
        if kind == "failed":
            return None, value
        return None

    def _load_and_wait(self, title: str, job) -> tuple[str, object]:
        """Run ``job(progress=, cancelled=)`` on the dataset loader's thread with its progress
        dialog, waiting in an event loop: ("loaded", result), ("failed", one line) or
        ("cancelled", why)."""
        if self.loader.is_running():
            self.tell("Open session", f"Still loading {source_title(self.loader.source)}; "
                      "cancel that first")
            return "cancelled", "another load is running"
        wait = {"loop": QEventLoop(), "result": None}
        self._session_wait = wait
        try:
            self.loader.start(title, job=job)
            self._show_load_dialog(title, "Open session")
            if wait["result"] is None:
                wait["loop"].exec()
        finally:
            self._session_wait = None
        return wait["result"] or ("cancelled", "")

    def _locate_dataset(self, loaded: LoadedSession, reason: str) -> ImageDataset | None:
        """Ask the user for the session's dataset until it matches (or they use it anyway,
        or cancel)."""
        shape = tuple(loaded.dataset_ref["image_shape"])
        while True:
            choice = self._ask_locate_dataset(loaded, reason)
            if not choice:
                return None
            kind, value = self._load_and_wait(
                choice, lambda progress, cancelled, c=choice: load_source(
                    c, progress=progress, cancelled=cancelled))
            if kind == "cancelled":
                return None
            if kind == "failed":
                reason = str(value)
                continue
            dataset = value
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

    def restore_session(self, loaded: LoadedSession, dataset: ImageDataset) -> bool:
        """Replace the current run with the loaded one (paused), its encoded images,
        selection and view."""
        if not self.switch_dataset(dataset, checkpoint=loaded.checkpoint):
            return False  # the message is shown; the current run goes on
        if self.loader.is_running():  # a dataset load the user started before opening
            self.loader.cancel_and_wait()
            self._end_load()
        self.restore_extras(loaded)
        return True

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
        recovered, self._recovering = self._recovering, None
        if recovered is None:
            self._adopt_session_file(loaded.path, int(loaded.checkpoint.counters["step"]),
                                     modified=False)
            button = self.controls.start_button.text()  # "Resume": say what the button says
            self.statusBar().showMessage(
                f"Opened {loaded.path} (paused: press {button} to go on)", 8000)
            return
        # The recovered run is unsaved work: it belongs to its named session, if it had one,
        # and stays marked changed until the user saves it.
        original = recovered["session_path"]
        self.session_path = Path(original) if original else None
        self._clean_step = -1
        self.setWindowModified(True)
        self._update_title()
        self.statusBar().showMessage(
            f"Restored the unsaved run from {recovered['saved_at']:%H:%M} (paused; Save keeps "
            "it)", 10000)

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
        """On close: autosave to the recovery file (the default) or ask. False: the close is
        cancelled (by the user, or because the autosave failed: the window says so)."""
        session, was_running = self.worker.session, self._running
        if session is None:
            return True
        # Stopped first, so the session is final (the window may not have heard of its last
        # steps yet) and safe to save from this thread; a cancelled close trains it on.
        self.worker.stop()
        if not self.isWindowModified() and session.step_count == self._clean_step:
            return True
        if self.prefs.autosave_on_quit and self._autosave_error is None:
            error = self._autosave()
            if not error:
                return True
            # Keep the window and the run: the same session trains on in a new thread.
            self._autosave_error = error
            self._adopt_stopped_session(session, was_running)
            self.tell("Could not save the unsaved run",
                      f"{error}\nThe window stays open so the run is not lost. Quit again "
                      "to choose: save it elsewhere, or discard it.")
            return False
        if self._resolve_unsaved("Quit", f"Quit? {self._session_name()} has unsaved changes."):
            return True
        self._adopt_stopped_session(session, was_running)
        return False

    def _autosave(self) -> str:
        """Write the recovery file (never the named session) and its notes; "" or why not."""
        path = autosave_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"{path.parent}: cannot create the folder for the recovery file ({exc})"
        step, error = self._write_session(path)
        if error:
            return error
        notes = {"saved_at": datetime.now().isoformat(timespec="seconds"), "step": step,
                 "session_path": None if self.session_path is None else str(self.session_path)}
        try:
            atomic_write(recovery_notes_path(), lambda tmp: Path(tmp).write_text(
                json.dumps(notes), encoding="utf-8"))
        except OSError as exc:  # the recovery file itself is saved: say so, and go on
            print(f"latent-explorer: {recovery_notes_path()}: {exc}", file=sys.stderr)
        return ""

    def _adopt_stopped_session(self, session, running: bool) -> None:
        """Train ``session`` (its worker has stopped) on in a new worker thread."""
        old = self.worker
        for signal, slot in ((old.progressed, self._on_progress),
                             (old.snapshotted, self._on_snapshot), (old.failed, self._on_failed),
                             (old.checkpointSaved, self._on_checkpoint_saved)):
            signal.disconnect(slot)
        self.worker = self._new_worker(start_paused=not running, session=session)
        if self._launched:
            self.worker.start()
        old.deleteLater()

    # ------------------------------------------------------------- recovery
    def _offer_recovery(self) -> None:
        """A bar above the plane: "Restore the unsaved run from 14:32?" (never modal: the
        window is usable, and a test or script can answer it)."""
        notes = read_recovery()
        if notes is None:
            return
        bar = QWidget()
        bar.setObjectName("recoveryBar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 4, 6, 4)
        original = notes["session_path"]
        what = f" ({Path(original).name}, changed since it was saved)" if original else ""
        label = QLabel(f"Restore the unsaved run from {notes['saved_at']:%H:%M}{what}?")
        label.setWordWrap(True)
        row.addWidget(label, 1)
        restore = QPushButton("Restore")
        discard = QPushButton("Discard")
        restore.setToolTip(str(autosave_path()))
        row.addWidget(restore)
        row.addWidget(discard)
        restore.clicked.connect(self.restore_recovery)
        discard.clicked.connect(self.discard_recovery)
        bar.setStyleSheet("#recoveryBar { background: #2d5a88; } QLabel { color: white; }")
        self._central_layout.insertWidget(0, bar)
        self.recovery_bar = bar
        self.recovery_label = label

    def _close_recovery_bar(self) -> None:
        if self.recovery_bar is not None:
            self.recovery_bar.hide()
            self.recovery_bar.deleteLater()
            self.recovery_bar = None

    def restore_recovery(self) -> bool:
        """Open the recovery file as the unsaved run it was; then it is no longer kept."""
        notes = read_recovery()
        if notes is None:
            self._close_recovery_bar()
            return False
        self._recovering = notes
        try:
            opened = self.open_session(autosave_path())
        finally:
            self._recovering = None
        if opened:
            discard_recovery()
            self._close_recovery_bar()
        return opened

    def discard_recovery(self) -> None:
        discard_recovery()
        self._close_recovery_bar()
        self.statusBar().showMessage("Discarded the unsaved run", 5000)


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
