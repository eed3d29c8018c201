"""F1's text: the explainer with the live model's parameter counts, then the window guide.

The counts make "amortized" concrete: one shared set of encoder weights phi produces every
datapoint's local variational parameters lambda_i = (mu_i, sigma_i), which are never stored
or trained as free parameters.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources

COUNTS_PLACEHOLDER = "<!--PARAMETER_COUNTS-->"


@dataclass(frozen=True)
class ParameterCounts:
    encoder: int  # |phi|: the encoder's weights and biases
    decoder: int  # |theta|: the decoder's weights and biases
    per_point: int  # 2 x latent_dim: mu_i and sigma_i of one datapoint
    points: int  # N datapoints
    inference: str = "amortized"  # trainer.config.INFERENCE_MODES
    table_rows: int | None = None  # free mode: the training points, one lambda_i row each

    @property
    def all_points(self) -> int:
        """N x 2 x latent_dim: what free per-datapoint parameters would number."""
        return self.points * self.per_point

    @property
    def table(self) -> int:
        """The free table's size: rows (training points) x 2 x latent_dim."""
        return (self.points if self.table_rows is None else self.table_rows) * self.per_point

    def optimised(self) -> tuple[tuple[str, int], ...]:
        """(what, how many) of the parameters the run's optimisers update."""
        d = self.per_point // 2
        theta = ("|θ|, decoder weights", self.decoder)
        phi = ("|φ|, encoder weights", self.encoder)
        if self.inference == "free":
            rows = self.points if self.table_rows is None else self.table_rows
            return theta, (f"λ table: {rows:,} training points × 2 × {d}",
                           self.table)
        return theta, phi

    @property
    def total(self) -> int:
        return sum(n for _, n in self.optimised())


# What each mode's optimisers update, in one sentence.
MODE_SENTENCES = {
    "amortized": "Amortized: Adam trains θ and φ; every λ_i = f_φ(x_i) is "
                 "computed, never stored.",
    "free": "Free-form (variational EM): a stored λ_i for every training point, "
            "optimised by a few steps (θ frozen) each time its point is in the minibatch; "
            "then Adam trains θ on them. The encoder is not used for them.",
    "semi": "Semi-amortized: Adam trains θ and φ; each minibatch's f_φ(x_i) is "
            "refined by K steps (θ frozen) and thrown away after the step.",
}


def parameter_counts(vae, n_points: int, inference: str = "amortized",
                     table_rows: int | None = None) -> ParameterCounts:
    """Counts of a trainer.VAE (a torch module with ``encoder``, ``decoder``, ``latent_dim``);
    ``table_rows``: a free-form run's training points (its table's rows)."""
    return ParameterCounts(encoder=sum(p.numel() for p in vae.encoder.parameters()),
                           decoder=sum(p.numel() for p in vae.decoder.parameters()),
                           per_point=2 * int(vae.latent_dim), points=int(n_points),
                           inference=inference,
                           table_rows=None if table_rows is None else int(table_rows))


def optimised_text(counts: ParameterCounts) -> str:
    """The parameters panel's plain text: one line per optimised set, the total, the
    mode's sentence."""
    lines = [f"{what}: {n:,}" for what, n in counts.optimised()]
    lines.append(f"optimised in all: {counts.total:,}")
    return "\n".join(lines) + "\n" + MODE_SENTENCES[counts.inference]


def counts_html(counts: ParameterCounts) -> str:
    d = counts.per_point // 2
    rows = (
        ("|&phi;|, encoder weights, shared by every datapoint", counts.encoder),
        ("|&theta;|, decoder weights", counts.decoder),
        (f"&lambda;<sub>i</sub> = (&mu;<sub>i</sub>, &sigma;<sub>i</sub>): 2 &times; {d} "
         "numbers per datapoint", counts.per_point),
        (f"all N = {counts.points:,} &lambda;<sub>i</sub>: N &times; 2 &times; {d}, computed "
         "by f<sub>&phi;</sub>, never stored as free parameters", counts.all_points)
        if counts.inference != "free" else
        (f"the free table: {counts.table // counts.per_point:,} training points &times; 2 "
         f"&times; {d}, stored and trained as free parameters", counts.table),
    )
    body = "".join(f"<tr><td>{text}</td><td align='right'>&nbsp;<b>{value:,}</b></td></tr>"
                   for text, value in rows)
    return (f"<p><b>This model, now</b>: {html.escape(MODE_SENTENCES[counts.inference])}"
            f"</p><table cellspacing='2'>{body}</table>")


def help_html(counts: ParameterCounts | None = None) -> str:
    """The explainer (with ``counts`` when known), a rule, then the guide to the window."""
    folder = resources.files("resources")
    explainer = (folder / "explainer.html").read_text(encoding="utf-8")
    explainer = explainer.replace(COUNTS_PLACEHOLDER, "" if counts is None else counts_html(counts))
    return explainer + "<hr>" + (folder / "help.html").read_text(encoding="utf-8")
