"""The inference mode in words and numbers, without Qt: the plane's sentence, which latents
the dots are, the parameter counts each mode optimises, and the q of a new x."""

from __future__ import annotations

import numpy as np
import torch

from explorer.core.explainer import MODE_SENTENCES, optimised_text, parameter_counts
from explorer.core.inference_view import plane_latents, plane_statement, q_for_new_points
from trainer import Session, TrainConfig
from trainer.inference_modes import cubature_rule, rule_elbo
from trainer.model import VAE


def small(**changes) -> TrainConfig:
    return TrainConfig(hidden=(16,), threads=1, batch_size=32, seed=0).replace(**changes)


def test_the_plane_says_what_every_dot_is():
    assert plane_statement(small()) == "every dot is f_\u03c6(x_i)"
    assert "every dot is a free parameter \u03bb_i" in plane_statement(small(inference="free"))
    semi = plane_statement(small(inference="semi", refine_steps=7))
    assert "every dot is f_\u03c6(x_i) refined by 7 steps" in semi


def test_counts_name_what_each_mode_optimises():
    vae = VAE.from_config(64, small())
    phi = sum(p.numel() for p in vae.encoder.parameters())
    theta = sum(p.numel() for p in vae.decoder.parameters())
    amortized = parameter_counts(vae, 100)
    assert [n for _, n in amortized.optimised()] == [theta, phi]
    free = parameter_counts(vae, 100, "free", table_rows=80)
    assert [n for _, n in free.optimised()] == [theta, 80 * 2 * 2]  # N x 2 x latent_dim
    assert free.total == theta + 320
    text = optimised_text(free)
    assert "80 training points" in text and "320" in text and "|\u03c6|" not in text
    assert MODE_SENTENCES["free"] in text
    semi = optimised_text(parameter_counts(vae, 100, "semi"))
    assert f"{phi:,}" in semi and MODE_SENTENCES["semi"] in semi


def test_semi_dots_are_the_refined_means_and_lines_start_at_the_encoders(digits):
    session = Session(digits, small(inference="semi", refine_steps=5))
    for _ in range(3):
        session.step()
    snapshot = session.snapshot()
    mu, sigma, starts = plane_latents(snapshot)
    assert mu is snapshot.refined_mu and sigma is snapshot.refined_sigma
    assert starts is snapshot.mu and not np.allclose(mu, starts)
    amortized = Session(digits, small()).snapshot()
    assert plane_latents(amortized)[2] is None


def test_a_new_x_in_free_mode_is_an_optimisation_that_never_lowers_the_elbo(digits):
    vae = VAE.from_config(digits.n_pixels, small()).eval().requires_grad_(False)
    x = (digits.as_float(slice(0, 6)).reshape(6, -1) > 0.5).astype(np.float32)
    free = q_for_new_points(vae, x, small(inference="free"))
    encoder = q_for_new_points(vae, x, small())
    assert free.seconds > free.encoder_seconds > 0
    assert "optimisation" in free.sentence() and "encoder pass" in free.sentence()
    assert encoder.sentence().startswith("q of 6 images: one encoder pass")
    # The fit starts at the prior N(0, I) and keeps its best iterate.
    rule = cubature_rule(2)
    xt = torch.from_numpy(x)
    zeros = torch.zeros(6, 2)
    with torch.no_grad():
        start = rule_elbo(vae, xt, zeros, zeros, rule)
        fitted = rule_elbo(vae, xt, torch.from_numpy(free.mu),
                           torch.from_numpy(2 * np.log(free.sigma)), rule)
    assert (fitted >= start - 1e-3).all() and (fitted > start + 1e-3).any()


def test_the_inspected_q_is_the_runs_own_and_its_caption_says_which():
    from explorer.core.inference_view import ENCODER_Q, inspected_q

    mu, sigma = np.array([0.5, -1.0]), np.array([0.2, 0.3])
    assert inspected_q(TrainConfig(), mu, sigma) == (None, ENCODER_Q)
    q, caption = inspected_q(TrainConfig(inference="free"), mu, sigma)
    np.testing.assert_array_equal(q[0], mu)
    assert "row of the free table" in caption and "f_\u03c6" not in caption
    q, caption = inspected_q(TrainConfig(inference="free"), np.full(2, np.nan), np.full(2, np.nan))
    assert np.isnan(q[0]).all() and "fitted from the prior" in caption
    assert "new image" in inspected_q(TrainConfig(inference="free"), mu, sigma, True)[1]
    q, caption = inspected_q(TrainConfig(inference="semi", refine_steps=7), mu, sigma)
    np.testing.assert_array_equal(q[1], sigma)
    assert "refined by 7 steps" in caption
    # Above 2-D the Inspector scores the encoder's q, and says it is not the run's.
    q, caption = inspected_q(TrainConfig(inference="free", latent_dim=3), mu, sigma)
    assert q is None and "not this run's q" in caption
