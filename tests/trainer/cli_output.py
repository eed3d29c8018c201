"""Reading what the headless commands print: JSON lines on stdout, one-line errors on stderr."""

from __future__ import annotations

import json

FAST = ["--hidden", "32,32", "--quiet"]  # a small model, no progress bar


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("latent-explorer: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
