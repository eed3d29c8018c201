"""Sessions (``NAME.lexp``, explorer.core.session_file): the title and its unsaved-changes
mark, the view a session keeps, save / open / restore, the questions that could lose work,
autosave on quit and its recovery, and the recently opened list.

Saving asks the worker for a checkpoint between steps and writes the file atomically; opening
restores the run paused, with its curves, encoded images, selection and view. Questions that
could lose work (Save / Discard / Cancel) go through ``ask_unsaved`` and file pickers through
the window, so tests and scripts can answer them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import platformdirs
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QWidget,
)

from explorer.core.plane_view import plane_view_from_record, plane_view_record
from explorer.core.session_file import (
    SUFFIX,
    LoadedSession,
    SavedRun,
    SessionFileError,
    SessionState,
    check_dataset,
    find_dataset,
    load_session,
    save_session,
)
from explorer.core.state import SCHEDULES
from explorer.qt.controllers.datasets import DATASET_FILTER, DatasetsController
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



class SessionsController:
    """The run as a session file: its name, whether it changed since saved, saving, opening
    and recovering. ``datasets`` finds and switches to a session's dataset; ``views`` are the
    panels whose state a session keeps; ``select_point`` restores the selection; ``settings``
    hold the recent list (None: none kept)."""

    def __init__(self, window, views, datasets: DatasetsController,
                 select_point: Callable[[int], None], recent_menu: QMenu,
                 settings: QSettings | None, run_name: str | None, clean_step: int):
        self.window = window
        self._select_point = select_point
        self.views = views
        self.datasets = datasets
        self.recent_menu = recent_menu
        self.settings = settings
        self.path: Path | None = None  # the .lexp this run was opened from / saved to
        # Until it is saved, a run resumed from a checkpoint folder is named after the folder.
        self.run_name = run_name
        self.clean_step = clean_step  # the step last saved or opened (-1: never clean)
        self.recovery_bar: QWidget | None = None
        self.recovery_label: QLabel | None = None
        self._restoring = False  # encoded images being restored do not count as changes
        self._pending_restore: dict = {}  # selection and colouring, once a snapshot arrives
        self._save_loop: QEventLoop | None = None
        self._checkpoint_reply: tuple[str, str] | None = None
        self._saving_worker = None  # the worker a save waits on
        self._close_after_save = False  # a close came in during a save: close after it
        self._autosave_error: str | None = None  # the last autosave on quit failed: ask next
        self._recovering: dict | None = None  # the recovery file being restored, its notes
        recent_menu.aboutToShow.connect(self.rebuild_recent_menu)
        model = views.encoded_panel.model
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(self._on_encoded_list_changed)
        self.rebuild_recent_menu()

    # ----------------------------------------------------------- title, changes
    def name(self) -> str:
        if self.path is not None:
            return self.path.stem
        return self.run_name or "untitled"  # a --checkpoint run: its folder's name

    def update_title(self) -> None:
        self.window.setWindowTitle(
            f"{self.name()}[*] ({self.window.state.current.dataset.name}) - Latent Explorer")

    def new_run(self, clean_step: int) -> None:
        """A new run replaced the old one (a dataset switch or an opened session): untitled
        until saved (opening sets the file after), unchanged at ``clean_step``."""
        self.end_save_wait()
        self.path = None
        self.run_name = None
        self.clean_step = clean_step
        self._pending_restore = {}
        self.update_title()
        self.window.setWindowModified(False)

    def progressed(self, step: int) -> None:
        if step != self.clean_step:
            self.window.setWindowModified(True)  # training moved on since the last save/open

    def _adopt_file(self, path: Path, step: int, modified: bool) -> None:
        """The run is now ``path`` as saved at ``step``: the title and recent list say so."""
        self.path = path
        self.clean_step = step
        self.window.setWindowModified(modified)
        self.update_title()
        self.add_recent(path)

    def _on_encoded_list_changed(self, *_) -> None:
        if not self._restoring:
            self.window.setWindowModified(True)

    # ------------------------------------------------------------- view state
    def view_state(self) -> dict:
        """What a session keeps of the view (JSON-able)."""
        v, state = self.views, self.window.state
        return {"view_region": [float(x) for x in v.latent_view.view_region()],
                "sigma_level": state.sigma_level, "manifold_mode": v.manifold_view.mode(),
                "manifold_grid": int(v.manifold_view.grid_box.value()),
                "colour_by": v.colouring.kind, "aggregate": self.window.aggregate_shown(),
                "plane_view": plane_view_record(state.plane_view)}

    def apply_view_state(self, view: dict) -> None:
        """Restore ``view_state()``; values a crafted file got wrong are skipped."""
        v = self.views
        region = view.get("view_region")
        if (isinstance(region, list) and len(region) == 4
                and all(isinstance(x, (int, float)) and math.isfinite(x) for x in region)
                and region[0] < region[1] and region[2] < region[3]):
            v.latent_view.follow_data(False)
            v.latent_view.setRange(xRange=region[:2], yRange=region[2:], padding=0)
        level = view.get("sigma_level")
        if level in (1, 2) and not isinstance(level, bool):
            self.window.state.set_sigma_level(level)
        if view.get("manifold_mode") in MODES:
            v.manifold_view.set_mode(view["manifold_mode"])
        grid = view.get("manifold_grid")
        if isinstance(grid, int) and not isinstance(grid, bool) and 2 <= grid <= MAX_GRID:
            v.manifold_view.set_grid_size(grid)
        colour = view.get("colour_by")
        if colour in COLOURINGS:
            v.colouring.choose(colour)  # computed once the restored model's snapshot arrives
            self._pending_restore["colour"] = colour
        if isinstance(view.get("aggregate"), bool):
            self.window.show_aggregate(view["aggregate"])
        choice = plane_view_from_record(view.get("plane_view"))
        if choice is not None:
            self.window.state.set_plane_view(choice)

    def snapshot_arrived(self, n_points: int) -> None:
        """The first snapshot of an opened session: its selection and colouring now."""
        if not self._pending_restore:
            return
        restore, self._pending_restore = self._pending_restore, {}
        point = restore.get("point")
        if point is not None and point < n_points:
            self._select_point(point)
        if restore.get("colour", "label") != "label":
            self.views.colouring.recompute()

    # ----------------------------------------------------------------- saving
    def _write_checkpoint(self, folder: Path, worker) -> str:
        """Write a run's checkpoint into ``folder``: by its worker between steps (never
        racing the optimiser), or here when its thread has ended. "" or an error."""
        if not worker.isRunning():
            if worker.session is None:
                return "no model to save yet"
            try:
                save_checkpoint(worker.session, folder)
            except (OSError, ValueError) as exc:
                return str(exc)
            return ""
        self._checkpoint_reply = None
        self._saving_worker = worker
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

    def watch_trainer(self, controller) -> None:
        """A run's TrainingController, once: its checkpoint answers come here."""
        controller.checkpointSaved.connect(self.on_checkpoint_saved)
        controller.workerFinished.connect(self.worker_finished)

    def on_checkpoint_saved(self, path: str, error: str) -> None:
        self._checkpoint_reply = (path, error)
        self.end_save_wait()

    def worker_finished(self, worker) -> None:
        """A run's worker thread ended: a save waiting on that one will get no answer."""
        if worker is self._saving_worker:
            self.end_save_wait()

    def end_save_wait(self) -> None:
        if self._save_loop is not None:
            self._save_loop.quit()

    def session_state(self, checkpoint_dirs: list[Path]) -> SessionState:
        """Every run (its checkpoint folder, name and colour, in run order), the encoded
        images, the selection and the view."""
        panel = self.views.encoded_panel
        selected = panel.selected()
        runs = self.window.state.runs
        view = {**self.view_state(), "schedule": self.window.state.schedule,
                "current_run": runs.index(self.window.state.current)}
        return SessionState(checkpoint=checkpoint_dirs[0],
                            encoded=[e.image for e in panel.model.entries],
                            selected_encoded=selected if selected >= 0 else None,
                            selected_point=self.window.state.selected, view=view,
                            name=runs[0].name, colour=runs[0].colour,
                            more_runs=[SavedRun(folder, run.name, run.colour) for folder, run
                                       in zip(checkpoint_dirs[1:], runs[1:], strict=True)])

    def _write_session(self, path: Path) -> tuple[int | None, str]:
        """Write the session file ``path`` atomically: (the step saved, "") or (None, why)."""
        if self._save_loop is not None:
            return None, f"{path}: another save is still waiting for the training thread"
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.window.status(f"Saving {path}...")
        try:
            # Staged beside the session (same file system, swept when stale), not in $TMPDIR,
            # where a kill -9 mid-save left the checkpoint's weights behind for good.
            with staging_dir(path) as tmp:
                folders = []
                state = self.window.state
                for k, each in enumerate(state.runs):
                    folders.append(tmp / f"checkpoint-{k}")
                    error = self._write_checkpoint(folders[-1],
                                                   self.window.trainers.of(each).worker)
                    if error:
                        raise SessionFileError(f"{path}: cannot save the checkpoint of "
                                               f"{each.name} ({error})")
                current = folders[state.runs.index(state.current)]
                run = read_run_json(current)
                save_session(path, self.session_state(folders))
        except (SessionFileError, OSError, ValueError) as exc:
            self.window.status("")
            message = str(exc)
            if isinstance(exc, OSError) and str(path) not in message:
                message = f"{path}: {message}"
            return None, message
        finally:
            QApplication.restoreOverrideCursor()
            if self._close_after_save:  # a close arrived during the save: do it now
                self._close_after_save = False
                QTimer.singleShot(0, self.window.close)
        return int(run["counters"]["step"]), ""

    def save_session_to(self, path: str | os.PathLike, show_errors: bool = True) -> bool:
        """Save the run, encoded images and view to ``path`` (atomically); True on success."""
        path = Path(path)
        step, error = self._write_session(path)
        if error:
            if show_errors:
                self.window.tell("Could not save the session", error)
            else:
                print(f"latent-explorer: {error}", file=sys.stderr)
            return False
        # Training may have stepped on while the worker wrote: then it is unsaved again.
        progress = self.window.state.current.progress
        self._adopt_file(path, step, modified=progress is not None and progress.step != step)
        self.window.status(f"Session saved to {path}", 5000)
        return True

    def save_session(self) -> bool:
        """File > Save session: to the current file, or ask for one."""
        if self.path is None:
            return self.save_session_as()
        return self.save_session_to(self.path)

    def save_session_as(self) -> bool:
        path = self.window.save_file_name("Save session", f"{self.name()}{SUFFIX}",
                                          SESSION_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += SUFFIX
        return self.save_session_to(path)

    # ---------------------------------------------------------------- opening
    def ask_and_open(self) -> None:
        """File > Open session...: pick a session file and open it."""
        path = self.window.open_file_name("Open session", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | os.PathLike) -> bool:
        """Open a session file: a bad one is reported and the current run goes on."""
        window = self.window
        try:
            loaded = load_session(path)
        except SessionFileError as exc:
            window.tell("Could not open the session", f"{exc}\nStill training on "
                        f"{window.state.current.dataset.name}.")
            return False
        found = self._find_session_dataset(loaded)
        if found is None:  # cancelled, or the window is closing
            if not window.closing:
                window.status(f"Not opened; still training on "
                              f"{window.state.current.dataset.name}", 6000)
            return False
        dataset, reason = found
        if dataset is None:
            dataset = self._locate_dataset(loaded, reason or "")
            if dataset is None:
                window.status(f"Not opened; still training on "
                              f"{window.state.current.dataset.name}", 6000)
                return False
        if not self.resolve_unsaved("Open session",
                                    f"Open {Path(path).name}? The current run will be replaced."):
            return False
        try:
            return self.restore_session(loaded, dataset)
        except SessionFileError as exc:
            window.tell("Could not open the session", str(exc))
            return False

    def _find_session_dataset(self, loaded: LoadedSession
                              ) -> tuple[ImageDataset | None, str | None] | None:
        """find_dataset in the background (a 20,000-image folder froze the window for 20 s
        on this thread), with the Datasets menu's progress dialog and Cancel; this waits in
        an event loop, so the window keeps drawing and training goes on. None: cancelled."""
        def job(progress, cancelled):
            return find_dataset(loaded, progress=progress, cancelled=cancelled)

        kind, value = self.datasets.load_and_wait(f"the dataset of {loaded.path.name}", job)
        if kind == "loaded":
            return value
        if kind == "failed":
            return None, value
        return None

    def _locate_dataset(self, loaded: LoadedSession, reason: str) -> ImageDataset | None:
        """Ask the user for the session's dataset until it matches (or they use it anyway,
        or cancel)."""
        shape = tuple(loaded.dataset_ref["image_shape"])
        while True:
            choice = self.ask_locate_dataset(loaded, reason)
            if not choice:
                return None
            kind, value = self.datasets.load_and_wait(
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
            if tuple(dataset.image_shape) == shape and self.window.confirm(
                    "Use a different dataset?",
                    f"{reason}.\nContinue training on it anyway? The weights, optimiser and "
                    "history carry over; a fresh epoch order starts."):
                return dataset

    def ask_locate_dataset(self, loaded: LoadedSession, reason: str) -> str | None:
        """Ask the user where the session's dataset is: a folder or a file, or None."""
        ref = loaded.dataset_ref
        box = QMessageBox(QMessageBox.Icon.Question, "Locate the dataset",
                          f"{loaded.path.name} was trained on {ref['name']} "
                          f"({ref['n']:,} images), which was not found as recorded.",
                          parent=self.window)
        box.setInformativeText(reason)
        folder = box.addButton("Folder...", QMessageBox.ButtonRole.AcceptRole)
        file = box.addButton("File...", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is folder:
            return self.window.folder_name("Locate the dataset folder") or None
        if box.clickedButton() is file:
            return self.window.open_file_name("Locate the dataset file", DATASET_FILTER) or None
        return None

    def restore_session(self, loaded: LoadedSession, dataset: ImageDataset) -> bool:
        """Replace the current run with the loaded one (paused), its encoded images,
        selection and view."""
        if not self.datasets.switch_dataset(dataset, checkpoint=loaded.checkpoint):
            return False  # the message is shown; the current run goes on
        if self.datasets.loader.is_running():  # a dataset load the user started before opening
            self.datasets.cancel_load()
        self.restore_extras(loaded)
        return True

    def restore_extras(self, loaded: LoadedSession) -> None:
        """A session's encoded images, selection and view, on a window already running its
        checkpoint (``switch_dataset(..., checkpoint=)`` or ``MainWindow(checkpoint=)``)."""
        panel = self.views.encoded_panel
        self._restoring = True
        try:
            panel.model.clear()
            panel.model.add([PreparedImage(r.name, r.source, r.original, r.input, list(r.notes))
                             for r in loaded.encoded])
        finally:
            self._restoring = False
        if loaded.selected_encoded is not None:
            panel.select(loaded.selected_encoded)
        self.apply_view_state(loaded.view)
        self._restore_runs(loaded)
        if loaded.selected_point is not None:
            self._pending_restore["point"] = loaded.selected_point
        recovered, self._recovering = self._recovering, None
        if recovered is None:
            self._adopt_file(loaded.path, int(loaded.checkpoint.counters["step"]),
                             modified=False)
            button = self.views.controls.start_button.text()  # "Resume": say what it says
            self.window.status(f"Opened {loaded.path} (paused: press {button} to go on)", 8000)
            return
        # The recovered run is unsaved work: it belongs to its named session, if it had one,
        # and stays marked changed until the user saves it.
        original = recovered["session_path"]
        self.path = Path(original) if original else None
        self.clean_step = -1
        self.window.setWindowModified(True)
        self.update_title()
        self.window.status(f"Restored the unsaved run from {recovered['saved_at']:%H:%M} "
                           "(paused; Save keeps it)", 10000)

    def _restore_runs(self, loaded: LoadedSession) -> None:
        """The session's further runs beside the first (which the window runs already),
        each paused on its checkpoint, with their names, colours and the schedule."""
        window = self.window
        first = loaded.runs[0]
        if first.name and first.name.strip():
            window.state.current.rename(first.name)
        for saved in loaded.runs[1:]:
            config = saved.checkpoint.config.replace(**window.current_run.placement)
            window.runs.add_run(config, saved.name, saved.colour, checkpoint=saved.checkpoint)
        if loaded.view.get("schedule") in SCHEDULES:
            window.state.set_schedule(loaded.view["schedule"])
        current = loaded.view.get("current_run")
        if isinstance(current, int) and not isinstance(current, bool) \
                and 0 <= current < len(window.state.runs):
            window.state.set_current(window.state.runs[current])

    # ---------------------------------------------------- work that could be lost
    def ask_unsaved(self, title: str, question: str) -> str:
        """"save", "discard" or "cancel". A script that answers Yes/No questions through
        the window's ``confirm`` gets the two-way form (Yes: discard)."""
        window = self.window
        if window.confirm != window.ask:
            return "discard" if window.confirm(title, question) else "cancel"
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Warning, title, question,
                          buttons.Save | buttons.Discard | buttons.Cancel, window)
        box.setInformativeText(f"{self.name()} has unsaved changes (training or "
                               "encoded images). Save them as a session first?")
        box.setDefaultButton(buttons.Save)
        answer = box.exec()
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(
            buttons(answer), "cancel")

    def resolve_unsaved(self, title: str, question: str) -> bool:
        """Whether to go on replacing or closing the run (saving it first if asked)."""
        if not self.window.isWindowModified():
            return True
        answer = self.ask_unsaved(title, question)
        if answer == "save":
            return self.save_session()
        return answer == "discard"

    def may_close(self) -> bool:
        """Whether a close may go on now. A save waiting for the worker (its event loop let
        the close in) finishes first, then closes the window the normal way; unsaved work is
        autosaved to the recovery file (the default) or asked about."""
        if self._save_loop is not None:
            self._close_after_save = True
            return False
        return self.window.closing or self._keep_unsaved_work()

    def _keep_unsaved_work(self) -> bool:
        """Autosave or ask. False: the close is cancelled (by the user, or because the
        autosave failed: the window says so)."""
        window = self.window
        trainer = window.trainers.current
        session, was_running = trainer.worker.session, trainer.wants_running
        if session is None:
            return True
        # Stopped first, so the session is final (the window may not have heard of its last
        # steps yet) and safe to save from this thread; a cancelled close trains it on.
        trainer.worker.stop()
        if not window.isWindowModified() and session.step_count == self.clean_step:
            return True
        if window.preferences.prefs.autosave_on_quit and self._autosave_error is None:
            error = self._autosave()
            if not error:
                return True
            # Keep the window and the run: the same session trains on in a new thread.
            self._autosave_error = error
            trainer.new_worker(start_paused=not was_running, session=session)
            window.tell("Could not save the unsaved run",
                        f"{error}\nThe window stays open so the run is not lost. Quit again "
                        "to choose: save it elsewhere, or discard it.")
            return False
        if self.resolve_unsaved("Quit", f"Quit? {self.name()} has unsaved changes."):
            return True
        trainer.new_worker(start_paused=not was_running, session=session)
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
                 "session_path": None if self.path is None else str(self.path)}
        try:
            atomic_write(recovery_notes_path(), lambda tmp: Path(tmp).write_text(
                json.dumps(notes), encoding="utf-8"))
        except OSError as exc:  # the recovery file itself is saved: say so, and go on
            print(f"latent-explorer: {recovery_notes_path()}: {exc}", file=sys.stderr)
        return ""

    # ------------------------------------------------------------- recovery
    def offer_recovery(self) -> None:
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
        self.window.add_bar(bar)
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
        self.window.status("Discarded the unsaved run", 5000)

    # ------------------------------------------------------------ recent files
    def recent_files(self) -> list[str]:
        return recent_list(self.settings)

    def add_recent(self, path: str | os.PathLike) -> None:
        if self.settings is None:
            return
        path = str(Path(path).resolve())
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent/files", files[:MAX_RECENT])
        self.settings.sync()
        self.rebuild_recent_menu()

    def clear_recent(self) -> None:
        if self.settings is not None:
            self.settings.remove("recent/files")
            self.settings.sync()
        self.rebuild_recent_menu()

    def rebuild_recent_menu(self) -> None:
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
