"""The objectives against closed forms and independent estimators."""

import math

import pytest
import torch
from torch import nn

from trainer.elbo import (
    elbo_terms,
    gaussian_kl,
    grid_log_px,
    iwae_log_px,
    log_normal,
    training_loss,
)
from trainer.model import VAE


def linear_gaussian_vae(d: int = 5, seed: int = 0) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A VAE whose decoder is p(x|z) = N(Wz + b, diag s2): its marginal is known exactly,
    p(x) = N(b, W W^T + diag s2)."""
    torch.manual_seed(seed)
    model = VAE(d, latent_dim=2, hidden=(16,), likelihood="gaussian")
    linear = nn.Linear(2, 2 * d)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:d] = torch.randn(d, 2)
        linear.bias[:d] = torch.randn(d)
        linear.bias[d:] = torch.linspace(-1.5, -0.5, d)
    model.decoder = linear
    params = model.decode(torch.zeros(1, 2))[0]
    return model, params[0], params[1].exp()  # the decoder's b and its effective s2


def exact_log_px(model: VAE, x: torch.Tensor) -> torch.Tensor:
    weight = model.decoder.weight[: model.n_pixels].double()
    b = model.decoder.bias[: model.n_pixels].double()
    s2 = model.decode(torch.zeros(1, 2))[0, 1].exp().double()
    cov = weight @ weight.T + torch.diag(s2)
    dist = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
    return dist.log_prob(x.double()).float()


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(1)
    mu = torch.tensor([[0.5, -1.0], [2.0, 0.3]])
    logvar = torch.tensor([[-1.0, 0.4], [-3.0, -0.2]])
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, *mu.shape)
    zero = torch.zeros_like(z)
    mc = (log_normal(z, mu, logvar) - log_normal(z, zero, zero)).mean(0)
    torch.testing.assert_close(gaussian_kl(mu, logvar), mc, atol=0.01, rtol=0.01)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert gaussian_kl(torch.zeros(1, 2), torch.zeros(1, 2)).item() == 0.0
    assert gaussian_kl(torch.tensor([[0.1, 0.0]]), torch.zeros(1, 2)).item() > 0


def test_grid_log_px_matches_linear_gaussian_marginal():
    model, b, _ = linear_gaussian_vae()
    x = b + torch.randn(4, model.n_pixels)
    torch.testing.assert_close(grid_log_px(model, x, n=256, half_width=8.0),
                               exact_log_px(model, x), atol=1e-3, rtol=1e-4)


def test_iwae_tightens_towards_exact_log_px():
    model, b, _ = linear_gaussian_vae(seed=3)
    x = b + torch.randn(3, model.n_pixels)
    exact = exact_log_px(model, x)
    g = torch.Generator().manual_seed(0)
    # L_1 is the ELBO: on average well below log p(x) for an untrained encoder.
    l1 = torch.stack([iwae_log_px(model, x, k=1, generator=g).log_px
                      for _ in range(200)]).mean(0)
    l5000 = iwae_log_px(model, x, k=5000, generator=g).log_px
    assert torch.all(l1 < exact - 0.5)
    torch.testing.assert_close(l5000, exact, atol=0.25, rtol=0)


def test_iwae_standard_error_matches_the_spread_of_independent_repeats():
    """The delta-method SE from one run's k weights against the sd of 400 independent
    runs, on a model whose log p(x) is known in closed form; the repeats' mean sits below
    log p(x) (a lower bound on average) while single runs may land above it."""
    model, b, _ = linear_gaussian_vae(seed=5)
    x = b + 0.7 * torch.randn(3, model.n_pixels)
    exact = exact_log_px(model, x)
    g = torch.Generator().manual_seed(1)
    runs = [iwae_log_px(model, x, k=200, generator=g) for _ in range(400)]
    estimates = torch.stack([r.log_px for r in runs]).double()
    ses = torch.stack([r.se for r in runs]).double()
    spread = estimates.std(0)
    assert torch.all(spread > 0.01)  # the toy's estimator is noisy enough to test
    # sd of a sample sd over 400 repeats is ~3.5 %; the delta method is first order.
    torch.testing.assert_close(ses.median(0).values, spread, rtol=0.2, atol=0)
    assert torch.all(estimates.mean(0) <= exact.double() + 2 * spread / 20)
    assert torch.all(torch.isfinite(ses)) and torch.all(ses > 0)


def test_iwae_standard_error_shrinks_like_one_over_root_k():
    model, b, _ = linear_gaussian_vae(seed=6)
    x = b + torch.randn(2, model.n_pixels)
    g = torch.Generator().manual_seed(2)
    se_100 = iwae_log_px(model, x, k=100, generator=g).se
    se_10000 = iwae_log_px(model, x, k=10_000, generator=g).se
    torch.testing.assert_close(se_100 / se_10000, torch.full_like(se_100, 10.0), rtol=0.35,
                               atol=0)


def test_elbo_is_below_log_px_and_its_terms_add_up():
    model, b, _ = linear_gaussian_vae(seed=4)
    x = b + torch.randn(8, model.n_pixels)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        recon = torch.stack([elbo_terms(model, x, g).recon for _ in range(4000)]).mean(0)
        terms = elbo_terms(model, x, g)
    elbo = recon - terms.kl
    assert torch.all(elbo <= exact_log_px(model, x) + 0.05)
    torch.testing.assert_close(terms.elbo, terms.recon - terms.kl)


def test_bernoulli_log_likelihood_is_the_bernoulli_log_pmf():
    model = VAE(6, hidden=(8,))
    logits = torch.randn(3, 6)
    x = torch.bernoulli(torch.full((3, 6), 0.5))
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, logits), expected)
    torch.testing.assert_close(model.log_likelihood_matrix(x, logits).diagonal(), expected)


def test_gaussian_likelihood_matrix_matches_pairwise_evaluation():
    model = VAE(5, hidden=(8,), likelihood="gaussian")
    x = torch.randn(3, 5)
    params = model.decode(torch.randn(4, 2))
    pairwise = torch.stack([model.log_likelihood(xi, params) for xi in x])
    torch.testing.assert_close(model.log_likelihood_matrix(x, params), pairwise,
                               atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 4.0])
def test_beta_weights_only_the_kl_in_the_training_loss(beta):
    recon, kl = torch.tensor([-10.0, -20.0]), torch.tensor([2.0, 3.0])
    from trainer.elbo import ElboTerms

    terms = ElboTerms(recon=recon, kl=kl)
    assert training_loss(terms, beta).item() == pytest.approx(15.0 + beta * 2.5)
    assert terms.elbo.mean().item() == pytest.approx(-17.5)  # the reported ELBO has beta = 1


def test_grid_needs_a_2d_latent():
    with pytest.raises(ValueError, match="2-D"):
        grid_log_px(VAE(4, latent_dim=3, hidden=(4,)), torch.rand(1, 4))


def test_log_normal_is_the_standard_normal_density():
    assert log_normal(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2)).item() == \
        pytest.approx(-math.log(2 * math.pi))
