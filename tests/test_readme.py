"""The README's two commands are the ones CI and a newcomer run."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_quick_start_has_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert "latent-explorer" in commands[0]
    assert "pytest" in commands[1] and "[test]" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


def test_ci_never_reruns_the_suite_and_keeps_faulthandler_on():
    """A crash of the test process is a bug: CI runs pytest once, and a crash or a hang prints
    every thread's stack (pytest's faulthandler plugin, with a timeout for hangs)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert sum("pytest" in line for line in ci_lines) == 1, ci_lines
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert float(options["faulthandler_timeout"]) > 0
    assert "no:faulthandler" not in options.get("addopts", "")
