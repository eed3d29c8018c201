"""One datapoint's numbers across runs: each run scores its own x; on a 2-D latent space the
grid's exact log p(x) bounds the ELBO from above and agrees with the independent IWAE
estimate; other latent sizes give the IWAE estimate with its standard error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core.compare import compare_point, point_numbers
from trainer import FrozenVAE, Session, TrainConfig
from trainer.elbo import iwae_log_px
from trainer.evidence import dataset_evidence

SMALL = TrainConfig(hidden=(32,), threads=1, batch_size=64, eval_every_seconds=1e9,
                    logpx_points=0)


def frozen(dataset, **changes) -> FrozenVAE:
    session = Session(dataset, SMALL.replace(**changes))
    for _ in range(150):
        session.step()
    return session.snapshot(latent_seconds=0).model


@pytest.fixture(scope="module")
def models(digits):
    return [("beta=1", frozen(digits)), ("beta=4", frozen(digits, beta=4.0)),
            ("threshold", frozen(digits, binarization="threshold"))]


def test_each_run_scores_its_own_x_and_the_grid_bounds_the_elbo(models, digits):
    rows = compare_point(models, digits, 11)
    assert [r.run for r in rows] == ["beta=1", "beta=4", "threshold"]
    for (name, model), row in zip(models, rows, strict=True):
        assert row.method == "grid" and row.log_px_se is None
        assert row.kl >= 0 and row.inference_gap > -0.01, (name, row)  # ELBO <= log p(x)
        x = torch.as_tensor(dataset_evidence(digits, model.binarization, [11]))
        iwae = iwae_log_px(model.model, x, k=5000, generator=torch.Generator().manual_seed(1))
        assert abs(float(iwae.log_px[0]) - row.log_px) < 4 * float(iwae.se[0]) + 0.05, name
    assert rows[1].kl < rows[0].kl  # beta = 4 pays less KL for this point
    assert rows[0] == point_numbers("beta=1", models[0][1],
                                    dataset_evidence(digits, "dynamic", [11]))


def test_a_larger_latent_space_reports_iwae_with_its_standard_error(digits):
    model = frozen(digits, latent_dim=3)
    (row,) = compare_point([("3-D", model)], digits, 0)
    assert row.method.startswith("IWAE") and row.log_px_se is not None and row.log_px_se > 0
    assert row.kl >= 0 and row.log_px > row.elbo - 5 * row.log_px_se - 0.5


def test_a_free_form_run_is_compared_on_its_table_row_as_its_inspector_scores_it(digits):
    from explorer.core.compare import run_q
    from trainer.local_opt import gaussian_fit

    session = Session(digits, SMALL.replace(inference="free"))
    for _ in range(150):
        session.step()
    snapshot = session.snapshot(latent_seconds=0)
    i = int(session.split.train[0])
    q = run_q(snapshot, i)
    assert q is not None and np.allclose(q[0], snapshot.mu[i])  # the table's row, not f_phi
    (row,) = compare_point([("free", snapshot.model, q)], digits, i)
    x = dataset_evidence(digits, snapshot.model.binarization, [i]).reshape(-1)
    assert row.elbo == pytest.approx(gaussian_fit(snapshot.model.model, x, *q).elbo)
    (encoder_row,) = compare_point([("free", snapshot.model)], digits, i)
    assert row.elbo > encoder_row.elbo  # the untrained encoder's q is not this run's q
    assert row.log_px == encoder_row.log_px and row.inference_gap >= -0.01
