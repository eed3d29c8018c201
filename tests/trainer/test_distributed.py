"""Distributed training on real torch.distributed ranks (gloo on 127.0.0.1), started by
torchrun's own launcher in a subprocess, on the built-in digits with a small model."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from trainer import CheckpointError, Session, TrainConfig, load_checkpoint, load_source
from trainer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WORLD_SIZE", None)
    return env


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240,
             **kwargs) -> subprocess.CompletedProcess:
    """``torchrun --nnodes 1 --nproc-per-node N --rdzv-endpoint 127.0.0.1:PORT ARGS``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc-per-node", str(nproc), "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *args]
    return subprocess.run(cmd, env=rank_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)


# Every rank builds the same session at batch BATCH (split over the ranks), takes STEPS
# steps and rank 0 writes the weights and the last gradients.
RANK_SCRIPT = textwrap.dedent("""
    import sys
    import safetensors.torch
    from trainer import Session, TrainConfig, load_source
    from trainer.distributed import Ranks

    out, batch, steps, binarization = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ranks, device = Ranks.from_env("cpu")
    config = TrainConfig(hidden=(64,), batch_size=batch, precision="fp32", seed=3,
                         binarization=binarization, threads=1, logpx_points=0)
    session = Session(load_source("digits"), config, ranks=ranks)
    for _ in range(steps):
        session.step()
    if ranks.is_main:
        tensors = {"w." + k: v for k, v in session.model.state_dict().items()}
        tensors.update({"g." + k: p.grad for k, p in session.model.named_parameters()})
        safetensors.torch.save_file(tensors, out)
    ranks.close()
""")


def one_process(batch: int, steps: int, binarization: str) -> dict[str, torch.Tensor]:
    config = TrainConfig(hidden=(64,), batch_size=batch, precision="fp32", seed=3,
                         binarization=binarization, threads=1, logpx_points=0)
    session = Session(load_source("digits"), config)
    for _ in range(steps):
        session.step()
    out = {"w." + k: v for k, v in session.model.state_dict().items()}
    out.update({"g." + k: p.grad for k, p in session.model.named_parameters()})
    return out


@pytest.mark.parametrize("binarization", ["dynamic"])
def test_two_ranks_at_half_batch_match_one_process_at_full_batch(tmp_path, binarization):
    """The all-reduce is right: 2 ranks at B/2 = 1 process at B, weights and gradients.

    Gradients are compared too: Adam's update is invariant to the gradient's scale, so
    weights alone would not catch a sum where a mean belongs. Dynamic binarisation and the
    reparameterisation noise are drawn for the global minibatch by every rank, so both
    set-ups see the same x and z."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "ranks.safetensors"
    steps = 2
    run = torchrun([str(script), str(out), "64", str(steps), binarization])
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = safetensors.torch.load_file(out)
    single = one_process(64, steps, binarization)
    assert ranks.keys() == single.keys()
    for name, value in single.items():
        torch.testing.assert_close(ranks[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # The check can fail: one process at batch 32 (one rank's half alone) differs.
    half = one_process(32, steps, binarization)
    assert not all(torch.allclose(half[k], single[k], atol=1e-6) for k in single)


def last_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, stdout  # rank 0 alone reports
    return json.loads(lines[0])


def test_torchrun_trains_digits_writes_one_checkpoint_that_evaluate_and_resume_read(
        tmp_path, capsys):
    out = tmp_path / "ckpt"
    run = torchrun(["-m", "trainer", "train", "digits", "--out", str(out), "--epochs", "1",
                    "--hidden", "64", "--batch-size", "64", "--quiet"])
    assert run.returncode == 0, run.stderr[-3000:]
    record = last_json(run.stdout)
    assert record["world_size"] == 2 and record["backend"] == "gloo"
    n_train = record["n_train"]
    assert n_train + record["n_heldout"] == 1797
    # Every rank's samples count; the odd point of an epoch that does not split is left out.
    assert record["samples_seen"] == n_train - n_train % 2
    assert record["epochs"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no partial leftovers

    # The held-out numbers are the mean over exactly the held-out points: one process
    # computes the same ones from the checkpoint.
    checkpoint = load_checkpoint(out)
    session = Session.from_checkpoint(checkpoint, load_source("digits"))
    assert session.evaluate()["elbo"] == pytest.approx(record["heldout_elbo"], rel=1e-6)
    assert checkpoint.counters["cursor"] == 0 and len(checkpoint.engine_state["order"]) == n_train

    assert main(["evaluate", "--checkpoint", str(out), "--k", "10", "--grid", "32",
                 "--max-points", "50"]) == 0
    evaluated = last_json(capsys.readouterr().out)
    assert evaluated["n_points"] == 50 and math.isfinite(evaluated["grid_log_px"])

    # Resumed by one process: continues the counters.
    assert main(["train", "digits", "--resume", str(out), "--out", str(tmp_path / "more"),
                 "--epochs", "1", "--quiet"]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert resumed["world_size"] == 1 and resumed["backend"] is None
    assert resumed["epochs"] == 2 and resumed["samples_seen"] == record["samples_seen"] + n_train


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def test_killing_one_rank_ends_the_run_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "ckpt"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", "digits", "--nproc", "2", "--out", str(out),
         "--seconds", "300", "--checkpoint-every", "0.5", "--hidden", "64", "--quiet"],
        env=rank_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists():
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.1)
        victims = [p for p in _children(launcher.pid) if _rank_of(p) == 1]
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode != 0
    assert stdout == ""  # no final report: the run did not finish
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("latent-explorer: error: rank 1 of 2 was killed by signal 9")
    checkpoint = load_checkpoint(out)  # the last complete checkpoint, intact
    assert checkpoint.counters["step"] > 0
    session = Session.from_checkpoint(checkpoint, load_source("digits"))
    assert math.isfinite(session.evaluate()["elbo"])


def test_checkpoint_every_keeps_a_recent_checkpoint_in_one_process(tmp_path):
    """A long single-process run killed without warning leaves the last periodic
    checkpoint, complete and newer than the first one."""
    out = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", "digits", "--out", str(out), "--seconds",
         "300", "--checkpoint-every", "0.3", "--hidden", "64", "--quiet"],
        env=rank_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        steps = []
        while len(set(steps)) < 3:  # three different checkpoints seen
            assert proc.poll() is None and time.monotonic() < deadline
            if (out / "run.json").exists():
                try:
                    steps.append(load_checkpoint(out).counters["step"])
                except CheckpointError:  # replaced while being read: try again
                    pass
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.communicate()
    assert steps == sorted(steps)
    checkpoint = load_checkpoint(out)
    assert checkpoint.counters["step"] >= max(steps)


def test_ctrl_c_ends_a_two_rank_run_with_one_line_and_no_new_checkpoint(tmp_path):
    out = tmp_path / "ckpt"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", "digits", "--nproc", "2", "--out", str(out),
         "--seconds", "300", "--checkpoint-every", "0.3", "--hidden", "64", "--quiet"],
        env=rank_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group, as a terminal's foreground job
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists():
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # mid-run, between or during periodic saves
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert launcher.returncode == 130 and stdout == ""
    assert [ln for ln in stderr.splitlines() if ln.strip()] == [
        "latent-explorer: error: stopped by SIGINT; the run wrote no checkpoint (the last "
        "complete one is intact)"]
    assert load_checkpoint(out).counters["step"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no half-replaced leftovers


def test_a_batch_that_does_not_split_over_the_ranks_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "digits", "--nproc", "3", "--out",
         str(tmp_path / "ckpt"), "--batch-size", "128", "--seconds", "1", "--quiet"],
        env=rank_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 2 and run.stdout == ""
    assert [ln for ln in run.stderr.splitlines() if ln.strip()] == [
        "latent-explorer: error: batch_size: 128 does not split evenly over 3 ranks"]
    assert not (tmp_path / "ckpt").exists()
