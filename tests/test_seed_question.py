"""F1's explainer answers both parts of the question the app exists for (issue 12), read from
the shipped resource itself (no Qt: the words are data)."""

from __future__ import annotations

import html
import re
from importlib import resources


def explainer_text() -> str:
    raw = (resources.files("resources") / "explainer.html").read_text(encoding="utf-8")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", raw)).split())


def test_the_variational_parameters_are_the_lambdas_and_phi_produces_them():
    text = explainer_text()
    assert "The variational parameters are the λi." in text
    assert "the optimisation variables are φ, which produce them" in text
    assert "Free-form VI optimises the λi directly" in text
    assert "amortized VI can never beat it" in text and "Margossian & Blei, 2024" in text
    assert "exactly the amortisation gap" in text
    assert "--inference amortized|free|semi" in text


def test_theta_is_in_the_posterior_because_of_bayes_rule_not_as_its_variable():
    text = explainer_text()
    assert "pθ(z|x) = pθ(x|z) p(z) / pθ(x): it is the true posterior of the latent z" in text
    assert "not a distribution over θ" in text
    assert "The accepted answer to the question that started this project says otherwise, and " \
           "is wrong there." in text
