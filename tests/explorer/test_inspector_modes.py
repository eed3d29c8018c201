"""The Inspector in free and semi mode says which q it shows, and scores that q: a free
run's training point its table row (its encoder never trains), a held-out point a q fitted
from the prior, a semi run's point its refined q."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from trainer import Session, TrainConfig, gaussian_fit
from trainer.evidence import dataset_evidence

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def free_run(digits):
    session = Session(digits, TrainConfig(hidden=(48,), threads=1, inference="free",
                                          batch_size=256, eval_every_seconds=1e6))
    for _ in range(60):
        session.step()
    return session.snapshot()


@pytest.fixture
def inspector(qtbot):
    plane = LatentView()
    qtbot.addWidget(plane)
    widget = Inspector(plane.plotItem)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.close()


def inspect(qtbot, inspector, snap, digits, i, **kwargs):
    x = dataset_evidence(digits, snap.model.binarization, [i])[0]
    with qtbot.waitSignal(inspector.inspected, timeout=WAIT_MS):
        inspector.inspect(snap.model, x, digits.as_float([i]).reshape(digits.image_shape),
                          f"datapoint #{i}", snap.mu[i], snap.sigma[i], snap.config, **kwargs)
    return x


def test_a_free_runs_training_point_shows_its_table_row(qtbot, inspector, free_run, digits):
    i = int(np.flatnonzero(np.isfinite(free_run.mu[:, 0]))[0])
    x = inspect(qtbot, inspector, free_run, digits, i)
    caption = inspector.caption_labels["lambda"].text()
    assert "row of the free table" in caption and "f_\u03c6" not in caption
    assert inspector.caption_labels["elbo"].text().startswith("ELBO_i of this q")
    v = inspector.values()
    np.testing.assert_allclose([v["mu1"], v["mu2"]], free_run.mu[i], rtol=1e-5)
    np.testing.assert_allclose([v["sigma1"], v["sigma2"]], free_run.sigma[i], rtol=1e-5)
    want = gaussian_fit(free_run.model, x, free_run.mu[i], sigma=free_run.sigma[i])
    assert v["elbo"] == pytest.approx(want.elbo, abs=1e-4)
    # "Optimise" starts from the row: q* is at least as good as the q shown.
    with qtbot.waitSignal(inspector.optimised, timeout=WAIT_MS):
        inspector.toggle_optimise()
    v = inspector.values()
    assert v["elbo_star"] >= v["elbo"] and v["amortisation_gap"] >= 0


def test_a_free_runs_heldout_point_is_fitted_and_says_so(qtbot, inspector, free_run, digits):
    i = int(np.flatnonzero(~np.isfinite(free_run.mu[:, 0]))[0])
    inspect(qtbot, inspector, free_run, digits, i)
    assert "fitted from the prior" in inspector.caption_labels["lambda"].text()
    assert "held-out point" in inspector.caption_labels["lambda"].text()
    v = inspector.values()
    assert np.isfinite([v["mu1"], v["mu2"], v["sigma1"], v["sigma2"], v["elbo"]]).all()
    # The fit beats the untrained encoder's q by far.
    x = dataset_evidence(digits, free_run.model.binarization, [i])[0]
    mu, sigma = (a[0] for a in free_run.model.encode(x[None]))
    assert v["elbo"] > gaussian_fit(free_run.model, x, mu, sigma=sigma).elbo


def test_a_semi_runs_point_shows_its_refined_q(qtbot, inspector, digits):
    from explorer.core.inference_view import plane_latents

    s = Session(digits, TrainConfig(hidden=(48,), threads=1, inference="semi",
                                    refine_steps=4, eval_every_seconds=1e6))
    for _ in range(20):
        s.step()
    snap = s.snapshot()
    mu, sigma, _ = plane_latents(snap)
    x = dataset_evidence(digits, snap.model.binarization, [3])[0]
    with qtbot.waitSignal(inspector.inspected, timeout=WAIT_MS):
        inspector.inspect(snap.model, x, digits.as_float([3]).reshape(digits.image_shape),
                          "datapoint #3", mu[3], sigma[3], snap.config)
    assert "refined by 4 steps" in inspector.caption_labels["lambda"].text()
    v = inspector.values()
    np.testing.assert_allclose([v["mu1"], v["mu2"]], snap.refined_mu[3], rtol=1e-5)
    # Without the run's config the Inspector shows the encoder's q, and says so.
    with qtbot.waitSignal(inspector.inspected, timeout=WAIT_MS):
        inspector.inspect(snap.model, x, digits.as_float([3]).reshape(digits.image_shape),
                          "datapoint #3", mu[3], sigma[3])
    assert "the encoder's output" in inspector.caption_labels["lambda"].text()
    np.testing.assert_allclose([inspector.values()["mu1"], inspector.values()["mu2"]],
                               snap.mu[3], rtol=1e-4)
