"""Training on several processes with torch.distributed (DistributedDataParallel).

``torchrun`` starts one process per CPU slot or GPU and sets RANK, WORLD_SIZE and
LOCAL_RANK; ``Ranks.from_env`` joins them into one process group (gloo on the CPU, nccl on
CUDA, one process per GPU). The Session stays the same loop with three hooks from here:

- each rank takes the positions ``rank::world_size`` of every epoch's seeded permutation of
  the training split (``shard``), so the shards are disjoint and reshuffled every epoch;
  the tail that does not split evenly is left out of that epoch, never padded, so every
  rank takes the same number of steps (DDP needs that);
- every rank draws the sampling noise (binarisation, reparameterisation) of the whole
  global minibatch from the same seeded generator and keeps its own rows (``shard_rows``):
  W ranks at batch B/W see exactly the x and z one process at batch B would, which makes
  them compute the same mean gradient (tested), at the price of drawing W times the noise;
- the loss is a minibatch mean, DDP averages the gradients, and the logged terms are
  summed with one all-reduce of a few numbers (``reduce_sum``), so every curve is a mean
  over every rank's samples.

Held-out evaluation runs on rank 0 alone, over exactly the held-out points; only rank 0
writes checkpoints, which hold the full epoch order, so ``--resume`` works with any number
of ranks.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .elbo import ElboTerms, elbo_terms


class RankStopped(RuntimeError):
    """This rank was told to stop (SIGTERM from torchrun after another rank failed, or
    Ctrl+C), or a collective failed because a peer died."""


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the training processes; one process by default."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def shard_rows(self) -> tuple[int, int]:
        """(start, step) of this rank's rows in a global minibatch."""
        return self.rank, self.world_size

    @classmethod
    def from_env(cls, device: str) -> tuple[Ranks, str]:
        """Join the process group torchrun set up; returns the ranks and this rank's device
        (``cuda`` becomes ``cuda:LOCAL_RANK``). Without torchrun: one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(), device
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.startswith("cuda"):
            backend, device = "nccl", f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        else:
            backend = "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        return cls(rank, world, local_rank, backend), device

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped in DDP when there are several ranks (rank 0's weights are
        broadcast to every rank here), else itself."""
        if not self.distributed:
            return module
        return nn.parallel.DistributedDataParallel(module)

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` over every rank, in place (a no-op on one process)."""
        if self.distributed:
            try:
                dist.all_reduce(values)
            except RuntimeError as e:  # gloo: a peer closed its connection
                raise RankStopped(f"another rank stopped ({str(e).splitlines()[0]})") from None
        return values

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            # Leave together: a rank that tears gloo down while rank 0 is still evaluating or
            # writing the checkpoint can abort ("terminate called without an active exception").
            try:
                dist.barrier()
            except RuntimeError:
                pass  # a peer is gone already; tear down what is left
            dist.destroy_process_group()


SINGLE = Ranks()


def shard(order: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's part of an epoch's order: positions rank, rank + W, ...; the last
    ``len(order) % W`` positions are left out so that every shard has the same length."""
    if not ranks.distributed:
        return order
    usable = len(order) - len(order) % ranks.world_size
    return order[ranks.rank:usable:ranks.world_size]


class ElboStep(nn.Module):
    """The training objective's terms as a module's ``forward``: DDP only hooks
    ``forward``, and the VAE is called through encode/decode."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, generator: torch.Generator,
                rows: tuple[int, int]) -> ElboTerms:
        return elbo_terms(self.vae, x, generator, rows=rows)


def stop_on_sigterm() -> None:
    """Turn torchrun's SIGTERM (sent when another rank failed) into RankStopped, so this
    rank ends with one line and writes nothing, instead of dying mid-write."""
    def handler(signum, frame):
        raise RankStopped("stopped by the launcher (another rank failed or was stopped)")
    signal.signal(signal.SIGTERM, handler)


# ------------------------------------------------------------------- the --nproc launcher

def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m trainer ARGV`` on ``nproc`` local ranks with torchrun's own engine
    (torch.distributed.run: standalone rendezvous on 127.0.0.1); returns the exit status.
    A failed rank ends the whole run; the message names it in one line."""
    import logging
    import socket
    import sys

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per rank unless told otherwise
    os.environ["LATENT_EXPLORER_LAUNCHER"] = "1"  # ranks leave the failure line to us
    for name in list(logging.root.manager.loggerDict):  # the agent's own log lines
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id="latent",
                          rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{port}",
                          max_restarts=0, monitor_interval=0.2)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "trainer", *argv)
    except ChildFailedError as e:
        if any(f.exitcode == 2 for f in e.failures.values()):
            return 2  # bad input: rank 0 said why (latent-explorer: error: ...)
        # The cause first: a rank killed by a signal, before ranks that then lost their peer.
        rank, failure = min(e.failures.items(),
                            key=lambda rf: (rf[1].exitcode >= 0, rf[1].timestamp))
        how = (f"was killed by signal {-failure.exitcode}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        print(f"latent-explorer: error: rank {rank} of {nproc} {how}; the run stopped and "
              "wrote no checkpoint (the last complete one is intact)", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SignalException) as e:  # Ctrl+C, or kill, of the launcher
        signum = getattr(e, "sigval", signal.SIGINT)
        print(f"latent-explorer: error: stopped by {signal.Signals(signum).name}; the run "
              "wrote no checkpoint (the last complete one is intact)", file=sys.stderr)
        return 128 + int(signum)
    return 0
