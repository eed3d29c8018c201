"""The current run in the window's full views: the Training panel's Start / Step / Reset and
live settings go to its TrainingController, and its echoes (snapshot, progress, failure,
running) are drawn in the plane, the curves, the figures, the banner and the panels that show
one run (manifold, dimensions, encoded images, colouring, thumbnails). Another run made current
is shown whole (``show_run``); the other runs' planes draw themselves (explorer.qt.views.
run_planes).

It holds only what the views need between snapshots: ``plane``, the 2-D view of the newest
snapshot, and ``placement``, the device and threads the next run trains on (Preferences or the
command line). The runs' facts live in the AppState; their workers in the Trainers.
"""

from __future__ import annotations

import numpy as np

from explorer.core.explainer import ParameterCounts, optimised_text, parameter_counts
from explorer.core.inference_view import plane_latents, plane_statement
from explorer.core.plane_view import PlaneData, plane_data
from explorer.core.state import AppState, Run
from explorer.qt.controllers.training import Trainers
from trainer import Checkpoint, ConfigError, ImageDataset, Progress, Snapshot, TrainConfig

FAILED_ADVICE = ("Nothing is training now. Reset builds a fresh model with the Training "
                 "panel's settings; Open session or a dataset starts another run.")


class CurrentRunController:
    """``window``: the facade (``status``, ``tell``, the unsaved mark) and the sibling
    controllers this one hands on to (``selection``, ``sessions``, ``images``, ``runs``),
    read when used (they are built after it). ``views``: the window's Panels."""

    def __init__(self, window, views, state: AppState, trainers: Trainers,
                 placement: dict, refresh_actions):
        self.window = window
        self.views = views
        self.state = state
        self.trainers = trainers
        self.placement = placement  # {"device": ..., "threads": ...}
        self.refresh_actions = refresh_actions
        self.plane: PlaneData | None = None  # the current snapshot's 2-D view
        state.plane_view_changed.connect(self._replot_plane)
        controls = views.controls
        controls.startPauseClicked.connect(self.toggle_running)
        controls.stepClicked.connect(self.step_once)
        controls.resetClicked.connect(self.reset_training)
        # Through the trainers, so the controls reach the current run's worker.
        controls.lrChanged.connect(lambda lr: self.trainers.current.set_lr(lr))
        controls.betaChanged.connect(lambda beta: self.trainers.current.set_beta(beta))
        controls.batchSizeChanged.connect(lambda n: self.trainers.current.set_batch_size(n))

    def config(self) -> TrainConfig:
        """The current run's config (its session's echo), placed on this window's device
        and threads (Preferences or the command line: they apply from the next run)."""
        return self.state.current.config.replace(**self.placement)

    # ------------------------------------------------------------ the runs
    def begin(self, first: Run, start: bool, checkpoint: Checkpoint | None) -> None:
        """Watch every run's echoes and train ``first`` (``checkpoint`` resumed, paused: the
        user sees it as it was saved)."""
        self.state.run_added.connect(self.watch)
        self.watch(first)
        if checkpoint is not None:
            self.views.controls.set_config(checkpoint.config)
        controller = self.trainers.of(first)
        controller.started = start or checkpoint is not None
        controller.new_worker(start_paused=not start or checkpoint is not None,
                              checkpoint=checkpoint)
        self.show_running()

    def watch(self, run: Run) -> None:
        """The current run's echoes redraw the window's full views (the others' planes,
        curves and titles listen for themselves)."""
        def current() -> bool:
            return run is self.state.current

        run.snapshot_changed.connect(lambda s: current() and self.apply_snapshot(s))
        run.progress_changed.connect(lambda p: current() and self.apply_progress(p))
        run.failure_changed.connect(lambda m: current() and self.show_failure(m))
        run.running_changed.connect(lambda _: current() and self.show_running())

    def start_run(self, dataset: ImageDataset, config: TrainConfig, session, resumed: bool
                  ) -> None:
        """One run again, on ``dataset``: train ``session``; ``resumed`` (a checkpoint)
        opens paused with its own settings in the controls."""
        self.window.runs.drop_extra_runs()
        controller = self.trainers.current
        controller.stop()
        start_paused = resumed or not controller.wants_running
        if resumed:
            self.views.controls.set_config(config)
            controller.started = True
        self.window.selection.forget()
        self.views.banner.dismiss()
        self.placement = {"device": config.device, "threads": config.threads}
        self.state.current.set_dataset(dataset)
        self.state.current.set_config(config)
        controller.new_worker(start_paused=start_paused, session=session)
        self.show_running()

    # ------------------------------------------------------------- intents
    def _refuse_if_failed(self, what: str) -> bool:
        """True (and says why, plainly) when the worker's loop has ended with an error, so
        a request would go to a thread that no longer serves any."""
        failure = self.state.current.failure
        if failure is None:
            return False
        self.window.tell(f"{what}: training has stopped", f"{failure}\n{FAILED_ADVICE}")
        return True

    def toggle_running(self) -> None:
        """Start or pause the current run (starting it pauses the others when one run
        trains at a time)."""
        if self._refuse_if_failed("Start"):
            return
        controller = self.trainers.current
        if controller.wants_running:
            controller.pause()
        else:
            self.views.banner.dismiss()
            self.trainers.start(self.state.current)
        controller.started = True
        self.show_running()

    def step_once(self) -> None:
        if self._refuse_if_failed("Step"):
            return
        if not self.trainers.current.wants_running:
            self.views.banner.dismiss()
            self.trainers.current.step()

    def reset_training(self) -> None:
        window = self.window
        try:
            config = self.views.controls.config_for_reset(
                self.config(), self.state.current.dataset.image_shape)
        except ConfigError as exc:
            window.status(f"Reset not applied: {exc}", 8000)
            return
        if not window.sessions.resolve_unsaved("Reset", "Rebuild the model from scratch? The "
                                               "current run's training is discarded."):
            window.status("Reset cancelled; the run goes on", 6000)
            return
        self.views.banner.dismiss()
        self.views.dataset_panel.set_config(config)
        failed = self.state.current.failure is not None
        # A failed worker's thread has ended: the controller trains a fresh model, paused,
        # in a new one.
        self.trainers.current.reset(config)
        self.state.current.set_config(config)  # asked for; the next snapshot echoes it
        self.show_running()
        window.status("A new training thread is building the model from scratch" if failed
                      else "Model rebuilt from scratch", 6000)
        window.setWindowModified(True)

    # ------------------------------------------------------------- echoes
    def show_running(self) -> None:
        """The current run's running echo (and whether it was ever started)."""
        self.views.controls.set_running(self.state.current.running,
                                        self.trainers.current.started)
        self.refresh_actions()

    def show_run(self, run: Run) -> None:
        """Another run became current: the full views, the Training panel and the figures
        show it."""
        v = self.views
        v.controls.set_config(run.config)
        v.dataset_panel.set_config(run.config)
        v.trails.clear()
        v.banner.dismiss()
        if run.snapshot is not None:
            self.apply_snapshot(run.snapshot)
        if run.progress is not None:
            self.apply_progress(run.progress)
        else:
            self.clear_figures()
        self.show_failure(run.failure)
        self.window.status(f"{run.name} is the current run: the Training panel drives it", 5000)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Draw the current run's newest snapshot in the full views."""
        v = self.views
        mu, sigma, starts = plane_latents(snapshot)  # semi: the refined q
        self.plane = plane = plane_data(self.state.plane_view, mu, sigma)
        rotation = plane.ellipses() if plane.rotated else None
        # Semi mode's lines from f_phi(x_i) to the refined mean, through the same linear
        # view as the dots: above 2-D, the projection of the segment in latent space.
        v.latent_view.set_latents(plane.means, plane.extents, rotation,
                                  starts=None if starts is None else plane.to_view(starts))
        v.latent_view.set_view_titles(*plane.axis_titles, plane.text)
        v.latent_view.set_caption(plane_statement(snapshot.config))
        v.controls.set_parameter_counts(optimised_text(self.parameter_counts()))
        v.dimensions.set_latents(mu, sigma)
        v.manifold_view.lift = None if mu.shape[1] == 2 else plane.lift
        v.manifold_view.set_model(snapshot.model)
        v.encoded_panel.model.set_inference(snapshot.config)
        v.encoded_panel.model.reencode(snapshot.model)  # the markers follow training
        v.colouring.set_data(snapshot.model, self.window.selection.model_inputs)
        # The aggregate density sums axis-aligned Gaussians: exact in an axes view only.
        v.aggregate.set_latents(*((plane.means, plane.extents) if not plane.rotated
                                  else (np.zeros((0, 2)), np.zeros((0, 2)))))
        if plane.rotated:
            v.aggregate.image.hide()
        v.trails.add_snapshot(plane.means)
        self.update_thumbnails()
        self.window.selection.snapshot_arrived()
        self.window.sessions.snapshot_arrived(len(snapshot.mu))
        v.latent_view.paint_now()  # the newest latents first, everything on it updated

    def _replot_plane(self, choice) -> None:
        """Another 2-D view chosen: the plane, its overlays and the manifold redrawn."""
        self.views.dimensions.set_choice(choice)
        self.views.trails.clear()
        if self.state.current is not None and self.state.current.snapshot is not None:
            self.apply_snapshot(self.state.current.snapshot)
            self.window.images.show_markers()
            self.window.status(self.plane.text, 6000)

    def apply_progress(self, p: Progress) -> None:
        self.window.sessions.progressed(p.step)
        self.views.elbo_view.set_history(p.train, p.heldout, p.logpx, p.gaps)
        self.views.figures.show(p)
        if self.views.banner.show_reason(p.stopped_reason):
            self.show_running()
            self.window.status("Training diverged and was paused", 10000)

    def show_failure(self, message: str | None) -> None:
        """The current run's worker ended with ``message`` (None: it lives again)."""
        self.show_running()
        self.views.controls.set_failed(message is not None)
        if message is None:
            return
        self.views.banner.show_message(f"{message}. {FAILED_ADVICE}")
        self.window.status("Training has stopped: press Reset to start again", 10000)

    def clear_figures(self) -> None:
        self.views.figures.clear(len(self.state.current.dataset))

    def update_thumbnails(self) -> None:
        thumbnails = self.views.thumbnails
        if not thumbnails.isVisible():
            return
        dataset = self.state.current.dataset
        if thumbnails.image_count() != len(dataset):
            thumbnails.set_images(np.rint(dataset.as_float().reshape(
                -1, *dataset.stored_shape) * 255).astype(np.uint8))
        if self.plane is not None:
            thumbnails.set_positions(self.plane.means)

    def parameter_counts(self) -> ParameterCounts:
        """|phi|, |theta| and the lambda_i counts of the live model (of the configured one
        before the first snapshot)."""
        run = self.state.current
        rows = None
        if run.model is not None:
            vae = run.model.model
            if run.config.inference == "free":  # held-out points have no row: NaN
                rows = int(np.isfinite(run.snapshot.mu).all(axis=1).sum())
        else:
            from trainer.model import VAE

            vae = VAE.from_config(run.dataset.n_pixels, run.config)
        return parameter_counts(vae, len(run.dataset), run.config.inference, rows)
