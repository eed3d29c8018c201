"""Every command of the README's "Outgrowing a laptop" section runs, on this machine: CPU
instead of CUDA, 2 local ranks instead of 4 GPUs (the multi-node line with --nnodes 1 and a
loopback rendezvous), digits instead of MNIST, one epoch of a small model."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def section_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Outgrowing a laptop", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.+?)\n```", section, re.S)
    return block.splitlines()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def for_this_machine(command: str) -> list[str]:
    """The README command as run here; each rewrite must apply where its pattern occurs."""
    rewrites = [(r"\bmnist\b", "digits"), (r" --device cuda", ""), (r"--nproc 4", "--nproc 2"),
                (r"--nproc-per-node 4", "--nproc-per-node 2"), (r"--nnodes 2", "--nnodes 1"),
                (r"server1:29400", f"127.0.0.1:{free_port()}"), (r"--epochs \d+", "--epochs 1"),
                (r"--batch-size 512", "--batch-size 64")]
    for pattern, replacement in rewrites:
        command = re.sub(pattern, replacement, command)
    args = shlex.split(command)
    if args[args.index("-m") + 2 if "-m" in args else 1] == "train":
        args += ["--hidden", "64", "--quiet"]
    else:  # the desktop: render one frame offscreen and end
        args += ["--screenshot", "shot.png", "--steps", "5"]
    launcher = {"latent-explorer": [sys.executable, "-m", "explorer"],
                "torchrun": [sys.executable, "-m", "torch.distributed.run"]}[args[0]]
    return launcher + args[1:]


def test_every_outgrowing_command_runs(tmp_path):
    commands = section_commands()
    assert any("--standalone" in c for c in commands)
    assert any("--nnodes 2" in c and "--rdzv-endpoint" in c for c in commands)
    np.save(tmp_path / "faces.npy",
            np.random.default_rng(0).integers(0, 256, (300, 12, 12), dtype=np.uint8))
    (tmp_path / "crops").mkdir()
    for i in range(40):
        img = np.zeros((12, 12), np.uint8)
        img[2 + i % 6:6 + i % 6, 3:8] = 255
        Image.fromarray(img).save(tmp_path / "crops" / f"{i}.png")
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1",
               QT_QPA_PLATFORM="offscreen", LATENT_EXPLORER_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WORLD_SIZE", None)
    for command in commands:
        run = subprocess.run(for_this_machine(command), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{command}\n{run.stderr[-3000:]}"
        if " train " in command:
            (line,) = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
            record = json.loads(line)
            ranks = 2 if ("--nproc" in command or "torchrun" in command) else 1
            assert record["world_size"] == ranks, command
            assert (tmp_path / record["checkpoint"]).resolve() == (tmp_path / "run").resolve()
    assert (tmp_path / "shot.png").stat().st_size > 0
