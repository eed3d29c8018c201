"""trainer.evidence: each datapoint's one fixed x, the same in every view and every run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer import Session, TrainConfig, load_source
from trainer.evidence import dataset_evidence, evidence_input, evidence_tensor, rule

SMALL = TrainConfig(hidden=(16,), threads=1, eval_every_seconds=1e9, logpx_points=0)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def test_dynamic_x_is_a_binary_sample_of_the_grey_image(digits):
    x = dataset_evidence(digits, "dynamic")
    grey = digits.as_float()
    assert set(np.unique(x)) == {0.0, 1.0}
    assert np.all(x[grey == 0] == 0) and np.all(x[grey == 1] == 1)
    # Pixels of grey level p are on with frequency p (a Bernoulli(p) draw each).
    for level in range(1, 16):
        on = x[np.isclose(grey, level / 16)]
        sd = np.sqrt(level / 16 * (1 - level / 16) / len(on))
        assert abs(on.mean() - level / 16) < 4 * sd, level


def test_a_datapoints_x_depends_on_nothing_but_its_image_and_index(digits):
    full = dataset_evidence(digits, "dynamic")
    idx = np.array([1500, 3, 272])
    np.testing.assert_array_equal(dataset_evidence(digits, "dynamic", idx), full[idx])
    # Not the model's seed: two runs with different seeds score the same x.
    a = Session(digits, SMALL.replace(seed=0)).datapoint_inputs(torch.from_numpy(idx))
    b = Session(digits, SMALL.replace(seed=9)).datapoint_inputs(torch.from_numpy(idx))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), full[idx])
    # Two datapoints with the same image still get their own draws.
    same = np.repeat(digits.as_float([5]), 2, axis=0)
    pair = evidence_input(same, "dynamic", np.array([5, 6]))
    assert not np.array_equal(pair[0], pair[1])


def test_an_outside_image_gets_the_same_x_every_time_keyed_by_its_pixels(digits):
    grey = digits.as_float([9])
    x1 = evidence_input(grey, "dynamic")
    np.testing.assert_array_equal(evidence_input(grey.copy(), "dynamic"), x1)
    # Float noise well below one grey level does not change it ...
    np.testing.assert_array_equal(evidence_input(grey + 1e-6, "dynamic"), x1)
    # ... a different image draws different noise.
    other = grey.copy()
    other[0, 30] = 1.0 - other[0, 30]
    x2 = evidence_input(other, "dynamic")
    assert (x2 != x1).sum() > 1


def test_threshold_and_none(digits):
    grey = digits.as_float(np.arange(10))
    np.testing.assert_array_equal(evidence_input(grey, "threshold"), (grey > 0.5) * 1.0)
    np.testing.assert_array_equal(evidence_input(grey, "none"), grey)
    with pytest.raises(ValueError, match="binarization"):
        evidence_tensor(torch.from_numpy(grey), "sometimes")
    assert "fixed" in rule("dynamic")


def test_the_planes_dots_are_f_phi_of_each_fixed_x(digits):
    session = Session(digits, SMALL)
    for _ in range(20):
        session.step()
    snap = session.snapshot()
    mu, sigma = snap.model.encode(dataset_evidence(digits, "dynamic"))
    np.testing.assert_allclose(snap.mu, mu, rtol=0, atol=1e-5)
    np.testing.assert_allclose(snap.sigma, sigma, rtol=1e-5)
    assert snap.model.binarization == "dynamic"
    # Held-out inputs are those same x.
    np.testing.assert_array_equal(session.heldout_inputs().numpy(),
                                  dataset_evidence(digits, "dynamic", session.split.heldout))
