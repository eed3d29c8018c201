"""F1's explainer: theta's place in p_theta(z|x) said outright, no misleading sentence, and the
live model's parameter counts beside it."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QTextBrowser

from explorer.core.explainer import help_html, parameter_counts
from trainer.model import VAE

WAIT_MS = 20000


def plain_text(html: str) -> str:
    browser = QTextBrowser()
    browser.setHtml(html)
    return " ".join(browser.toPlainText().split())


def test_explainer_says_why_theta_is_in_the_posterior_and_drops_the_misleading_sentences(qapp):
    text = plain_text(help_html())
    assert "pθ(z|x) = pθ(x|z) p(z) / pθ(x)" in text
    assert "distribution over z" in text and "not a posterior over θ" in text
    # The four sentences the review found misleading are gone ...
    assert "is what the ELBO is optimised over" not in text
    assert "computed exactly" not in text
    assert "gradient ascent" not in text
    assert "is the selected point's λi" not in text
    # ... and what replaces them says what is optimised, what is estimated, and how q* is found.
    assert "Training maximises the average ELBO over φ and θ" in text
    assert "Only Optimise this point in the inspector optimises one λi directly" in text
    assert "Monte-Carlo estimate" in text and "standard error" in text
    assert "L-BFGS" in text and "quadrature" in text
    assert "<!--" not in help_html()


def test_counts_are_the_models_own_parameter_numbers():
    vae = VAE(64, latent_dim=3, hidden=(32, 16))
    counts = parameter_counts(vae, n_points=100)
    assert counts.encoder == sum(p.numel() for p in vae.encoder.parameters())
    assert counts.decoder == sum(p.numel() for p in vae.decoder.parameters())
    # closed form: 64-32-16-6 encoder, 3-16-32-64 decoder
    assert counts.encoder == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 6 + 6
    assert counts.decoder == 3 * 16 + 16 + 16 * 32 + 32 + 32 * 64 + 64
    assert (counts.per_point, counts.all_points) == (6, 600)


def test_f1_shows_the_live_models_counts(qtbot, make_window):
    w = make_window(start=True)
    qtbot.waitUntil(lambda: w.state.current.model is not None, timeout=WAIT_MS)
    vae = w.state.current.model.model
    encoder = sum(p.numel() for p in vae.encoder.parameters())
    decoder = sum(p.numel() for p in vae.decoder.parameters())
    actions = [a for m in w.menuBar().actions() for a in m.menu().actions()]
    next(a for a in actions if a.shortcut() == QKeySequence("F1")).trigger()
    text = " ".join(w.help_dialog.findChild(QTextBrowser).toPlainText().split())
    w.help_dialog.close()
    n = len(w.state.current.dataset)
    assert f"encoder weights, shared by every datapoint {encoder:,}" in text
    assert f"decoder weights {decoder:,}" in text
    assert "2 × 2 numbers per datapoint 4" in text
    assert f"all N = {n:,} λi: N × 2 × 2" in text and f"{n * 4:,}" in text
