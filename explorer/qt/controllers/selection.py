"""Decode on click and the selected datapoint: the plane's clicks decode z with the newest
snapshot's frozen decoder (in this thread: it is fast), a clicked dot is selected, shown
beside its reconstruction and inspected (exact posterior, log p(x), gaps) in the background;
an encoded image picked in its panel is inspected the same way.
"""

from __future__ import annotations

import numpy as np

from explorer.core.inference_view import plane_latents
from trainer.evidence import dataset_evidence, evidence_input


def short(v: np.ndarray, shown: int = 4) -> str:
    """(a, b, ...) to two decimals, the first ``shown`` of a long vector."""
    parts = [f"{float(c):.2f}" for c in v[:shown]]
    more = f", … ({len(v)}-D)" if len(v) > shown else ""
    return f"({', '.join(parts)}{more})"


class SelectionController:
    """Drives the plane, the image panel, the inspector and the trails from the current run
    (its snapshot, dataset and config) and the linked selection (``state.selected``)."""

    def __init__(self, window, views, inspector_dock):
        self.window = window
        self.state = window.state
        self.views = views
        self.inspector_dock = inspector_dock
        self._sample_seed = 0
        self._inputs: tuple[str, np.ndarray] | None = None  # (binarization, every x)
        self._inspected: tuple[str, int] | None = None  # ("point" | "encoded", index)
        self.last_z: np.ndarray | None = None  # the full z last decoded
        self._held_full: np.ndarray | None = None  # a datapoint's mu being decoded, above 2-D
        views.latent_view.zRequested.connect(self.decode_z)
        views.latent_view.pointSelected.connect(self.select_point)
        views.latent_view.pointShiftPicked.connect(self.pick_end)
        views.encoded_panel.entrySelected.connect(self.inspect_encoded)
        views.inspector.refreshRequested.connect(self._reinspect)
        views.image_panel.mode_group.buttonToggled.connect(self._redecode)

    def forget(self) -> None:
        """A new run: nothing selected, inspected or cached."""
        self.state.select(None)
        self._inputs = None
        self._inspected = None

    def decode_z(self, x: float, y: float, z_full: np.ndarray | None = None) -> None:
        """Decode the plane point (x, y) with the newest snapshot's frozen decoder, in this
        thread. Above 2-D the plane is a view: z is ``z_full`` when given (a datapoint's
        mu), else the view's inverse at the click with the hidden directions at the
        aggregate posterior's mean (explorer.core.plane_view), said under the image."""
        model = self.state.current.model
        if model is None:
            return
        panel = self.views.image_panel
        z = np.array([[x, y]], np.float32)
        plane, note = self.window.current_run.plane, None
        self._held_full = z_full  # decoded again, as it is, under a newer decoder
        if model.latent_dim != 2 and plane is not None:
            if z_full is not None:
                z = np.asarray(z_full, np.float32).reshape(1, -1)
                note = f"z = μ of the selected point ({model.latent_dim}-D)"
            else:
                z = plane.lift((x, y)).astype(np.float32)[None]
                note = (f"view point ({x:.2f}, {y:.2f}); the other {model.latent_dim - 2} "
                        "directions at the aggregate mean")
        self.last_z = z[0]
        if panel.shows_sample:
            self._sample_seed += 1
            image = model.decode_sample(z, seed=self._sample_seed)[0]
        else:
            image = model.decode_mean(z)[0]
        panel.show_decoded((x, y), image, note)
        self.views.latent_view.set_crosshair((x, y))

    def select_point(self, index: int) -> None:
        v = self.views
        self.state.select(None if index < 0 else int(index))
        selected = self.state.selected
        v.latent_view.set_selected(selected)
        v.trails.set_tracked([] if selected is None else [selected])
        if selected is None:
            v.image_panel.clear_datapoint()
            v.inspector.clear()
            self._inspected = None
            return
        self._show_selected()
        self._inspect_selected()
        snapshot = self.state.current.snapshot
        self._show_traversal()
        if snapshot is not None and selected < len(snapshot.mu):
            mu = plane_latents(snapshot)[0][selected]
            if not np.isfinite(mu).all():  # a free-form run's held-out point has no lambda_i
                pass
            elif len(mu) == 2:
                self.decode_z(*(float(c) for c in mu))  # z = mu_i
            elif (plane := self.window.current_run.plane) is not None:
                self.decode_z(*plane.to_view(mu), z_full=mu)

    def snapshot_arrived(self) -> None:
        """A newer model: the same z decoded again, the selected point shown again."""
        panel = self.views.image_panel
        if panel.z is not None and not panel.shows_sample:
            self.decode_z(*panel.z, z_full=self._held_full)  # the same z, newer decoder
        if self.state.selected is not None:
            self._show_selected()
            self._show_traversal()
        strips, snapshot = self.window.strips, self.state.current.snapshot
        if len(strips.ends) == 2 and max(strips.ends) < len(snapshot.mu):
            strips.show_interpolation(snapshot.model, snapshot.mu)

    def _show_traversal(self) -> None:
        i, snapshot = self.state.selected, self.state.current.snapshot
        if snapshot is not None and i is not None and i < len(snapshot.mu):
            self.window.strips.show_traversal(snapshot.model, i, snapshot.mu, snapshot.sigma)

    def pick_end(self, index: int) -> None:
        """A shift-clicked dot: one end of the interpolation strip."""
        snapshot = self.state.current.snapshot
        if snapshot is not None and 0 <= index < len(snapshot.mu):
            self.window.strips.add_end(snapshot.model, index, snapshot.mu)
            self.window.docks["strips"].raise_()

    def _redecode(self, *_) -> None:
        if self.views.image_panel.z is not None:
            self.decode_z(*self.views.image_panel.z, z_full=self._held_full)

    def _binarization(self) -> str:
        """How the shown model makes each x (the snapshot's, else the configured one)."""
        run = self.state.current
        return run.snapshot.config.binarization if run.snapshot else run.config.binarization

    def model_inputs(self) -> np.ndarray:
        """Every datapoint's one fixed x (trainer.evidence), (N, D): what per-point
        colourings score, the x whose f_phi(x) are the plane's dots."""
        binarization = self._binarization()
        if self._inputs is None or self._inputs[0] != binarization:
            dataset = self.state.current.dataset
            self._inputs = (binarization, dataset_evidence(dataset, binarization))
        return self._inputs[1]

    def _datapoint_x(self, i: int) -> np.ndarray:
        """Datapoint i's x, (H, W) grey or (H, W, 3) colour."""
        dataset = self.state.current.dataset
        return dataset_evidence(dataset, self._binarization(), [i]).reshape(dataset.stored_shape)

    def _inspect_selected(self) -> None:
        """The exact posterior, log p(x) and gaps of the selected datapoint, computed once
        per selection with the newest model (the inspector works in the background)."""
        run, i = self.state.current, self.state.selected
        snapshot, dataset = run.snapshot, run.dataset
        if snapshot is None or i is None or i >= len(dataset):
            return
        self._inspected = ("point", i)
        image = dataset.as_float([i]).reshape(dataset.stored_shape)
        mu, sigma = (a[i] for a in plane_latents(snapshot)[:2])  # semi: the refined q
        self.views.inspector.inspect(snapshot.model, self._datapoint_x(i).reshape(-1), image,
                                     f"datapoint #{i}", mu, sigma, snapshot.config)
        self.inspector_dock.raise_()

    def inspect_encoded(self, index: int) -> None:
        entries = self.views.encoded_panel.model.entries
        snapshot = self.state.current.snapshot
        if snapshot is None or not 0 <= index < len(entries):
            return
        self._inspected = ("encoded", index)
        entry = entries[index]
        image = entry.image.input  # (H, W) grey or (H, W, 3) colour
        x = evidence_input(image[None], self._binarization())[0]  # keyed by its pixels
        self.views.inspector.inspect(snapshot.model, x.reshape(-1), image, entry.name,
                                     entry.mu, entry.sigma, snapshot.config, new_image=True)
        self.inspector_dock.raise_()

    def _reinspect(self) -> None:
        if self._inspected == ("point", self.state.selected):
            self._inspect_selected()
        elif self._inspected is not None and self._inspected[0] == "encoded":
            self.inspect_encoded(self._inspected[1])

    def _show_selected(self) -> None:
        run, i = self.state.current, self.state.selected
        snapshot, dataset = run.snapshot, run.dataset
        if snapshot is None or i is None or i >= len(dataset):
            return
        mu, sigma = (a[i] for a in plane_latents(snapshot)[:2])
        # A free-form run's held-out point has no lambda_i: nothing to reconstruct from.
        recon = (snapshot.model.decode_mean(mu[None, :])[0] if np.isfinite(mu).all()
                 else None)
        label = ""
        if dataset.labels is not None:
            value = int(dataset.labels[i])
            names = dataset.label_names
            label = f", label {names[value] if names and value < len(names) else value}"
        title = (f"datapoint #{i}{label}\nmu = {short(mu)}\nsigma = {short(sigma)}"
                 if recon is not None else
                 f"datapoint #{i}{label}\nheld out: a free-form run has no \u03bb_i for it")
        image = dataset.as_float([i]).reshape(dataset.stored_shape)
        self.views.image_panel.show_datapoint(title, image, recon, x=self._datapoint_x(i))
