"""F1's text: the explainer with the live model's parameter counts, then the window guide.

The counts make "amortized" concrete: one shared set of encoder weights phi produces every
datapoint's local variational parameters lambda_i = (mu_i, sigma_i), which are never stored
or trained as free parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

COUNTS_PLACEHOLDER = "<!--PARAMETER_COUNTS-->"


@dataclass(frozen=True)
class ParameterCounts:
    encoder: int  # |phi|: the encoder's weights and biases
    decoder: int  # |theta|: the decoder's weights and biases
    per_point: int  # 2 x latent_dim: mu_i and sigma_i of one datapoint
    points: int  # N datapoints

    @property
    def all_points(self) -> int:
        """N x 2 x latent_dim: what free per-datapoint parameters would number."""
        return self.points * self.per_point


def parameter_counts(vae, n_points: int) -> ParameterCounts:
    """Counts of a trainer.VAE (a torch module with ``encoder``, ``decoder``, ``latent_dim``)."""
    return ParameterCounts(encoder=sum(p.numel() for p in vae.encoder.parameters()),
                           decoder=sum(p.numel() for p in vae.decoder.parameters()),
                           per_point=2 * int(vae.latent_dim), points=int(n_points))


def counts_html(counts: ParameterCounts) -> str:
    d = counts.per_point // 2
    rows = (
        ("|&phi;|, encoder weights, shared by every datapoint", counts.encoder),
        ("|&theta;|, decoder weights", counts.decoder),
        (f"&lambda;<sub>i</sub> = (&mu;<sub>i</sub>, &sigma;<sub>i</sub>): 2 &times; {d} "
         "numbers per datapoint", counts.per_point),
        (f"all N = {counts.points:,} &lambda;<sub>i</sub>: N &times; 2 &times; {d}, computed "
         "by f<sub>&phi;</sub>, never stored as free parameters", counts.all_points),
    )
    body = "".join(f"<tr><td>{text}</td><td align='right'>&nbsp;<b>{value:,}</b></td></tr>"
                   for text, value in rows)
    return ("<p><b>This model, now</b> (amortised inference: one encoder for all datapoints):"
            f"</p><table cellspacing='2'>{body}</table>")


def help_html(counts: ParameterCounts | None = None) -> str:
    """The explainer (with ``counts`` when known), a rule, then the guide to the window."""
    folder = resources.files("resources")
    explainer = (folder / "explainer.html").read_text(encoding="utf-8")
    explainer = explainer.replace(COUNTS_PLACEHOLDER, "" if counts is None else counts_html(counts))
    return explainer + "<hr>" + (folder / "help.html").read_text(encoding="utf-8")
