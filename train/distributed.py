"""Data-parallel training with PyTorch's own engine: torch.distributed + DistributedDataParallel.

Launch with torchrun (one process per GPU, or per CPU socket with gloo)::

    torchrun --nproc_per_node=4 -m train.train --config train/configs/cusp_128.toml --run-dir runs/cusp128
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 \\
        -m train.train --config ... --run-dir /shared/runs/cusp128

(``--run-dir``, not ``--run``: torchrun's parser reads ``--run`` as an abbreviation of its ``--run-path``.)

torchrun puts RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment;
:func:`init_distributed` reads them (nccl on CUDA, gloo on CPU). Without them it returns a
single-process :class:`Dist` whose helpers are all no-ops, so a trainer calls them unconditionally
and the single-process code path is the distributed one with world size 1.

``cfg.batch`` is always the GLOBAL batch: each of W ranks trains on its own contiguous 1/W of it.
Together the ranks compute what one process computes on the whole batch, provided a trainer follows
these rules (the CUSP trainer does; a second trainer such as AMGAN needs the same):

1. Build identical networks on every rank (same seed); wrap the *trained* ones with :meth:`Dist.wrap`
   and keep the unwrapped modules for checkpoints, the EMA and sampling (same keys as one process).
2. Run everything that should produce gradients for a wrapped module inside ONE call of its
   ``forward`` per backward: DDP only hooks ``forward()``, so helper methods such as ``.encode`` must be
   called from a small wrapper module's ``forward``, not on ``ddp.module`` directly.
3. Draw every random number for the global batch on every rank and keep this rank's rows
   (:meth:`Dist.local`). All ranks then consume their RNGs identically and stay in lockstep (their RNG
   states, hence the checkpoint's, are the single-process ones), and per-sample randomness does not
   depend on the world size.
4. Gradient penalties that need a double backward (R1) run on the *unwrapped* module, followed by
   :meth:`Dist.average_gradients`: DDP's reducer does not take part in ``autograd.grad`` graphs, and
   parameters that the penalty does not reach would leave it waiting.
5. Only rank 0 (:attr:`Dist.is_main`) writes logs, TensorBoard events, samples and checkpoints; every
   rank reads the checkpoint it resumes from, so a run folder must be on storage all nodes share.

Since the weights stay identical on all ranks (identical gradients after the all-reduce, identical
optimiser steps), the EMA is updated identically everywhere from identical weights, and a checkpoint
written by rank 0 of a W-process run resumes on any other number of processes.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as tdist


def env_rank() -> int:
    """This process's global rank from torchrun's environment (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world() -> int:
    """The number of processes from torchrun's environment (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass(frozen=True)
class Dist:
    """Who this process is in the job, and the collective operations training needs."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this object created the process group (and destroys it in close())

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data ------------------------------------------------------------------------------------
    def local_size(self, global_batch: int) -> int:
        """Rows of the global batch this rank trains on; the batch must split evenly."""
        if global_batch % self.world:
            raise ValueError(
                f"the global batch ({global_batch}) must be divisible by the number of "
                f"processes ({self.world}): set batch to a multiple of {self.world}"
            )
        return global_batch // self.world

    def local(self, t: torch.Tensor, chunks: int = 1) -> torch.Tensor:
        """This rank's rows of a tensor drawn for the global batch.

        ``t`` is ``chunks`` global batches stacked along dim 0 (e.g. ``[rec; fake]`` decoded together):
        each chunk is split into W contiguous parts and this rank keeps part ``rank`` of every chunk.
        """
        if not self.enabled:
            return t
        per = self.local_size(t.shape[0] // chunks)
        return t.reshape(chunks, self.world, per, *t.shape[1:])[:, self.rank].reshape(chunks * per, *t.shape[1:])

    # -- models ----------------------------------------------------------------------------------
    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (itself when single-process).

        DDP copies rank 0's parameters and buffers to all ranks here, then all-reduces (averages) the
        gradients during each backward that follows a ``forward`` of the wrapper.
        """
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average the ``.grad`` of ``module``'s parameters over ranks (as DDP's reducer would)."""
        if not self.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    # -- scalars ---------------------------------------------------------------------------------
    def mean_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Average a dict of per-rank scalars (the same keys on every rank) over ranks."""
        if not self.enabled or not stats:
            return stats
        keys = sorted(stats)
        values = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=self.device)
        tdist.all_reduce(values)
        return dict(zip(keys, (values / self.world).tolist()))

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (for stop decisions that must agree)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item())

    def check_same(self, value: int, what: str) -> None:
        """Raise on every rank unless ``value`` is the same on all ranks."""
        if not self.enabled:
            return
        t = torch.tensor([value, -value], device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        lo, hi = -int(t[1]), int(t[0])
        if lo != hi:
            raise RuntimeError(
                f"ranks disagree on the {what} ({lo} .. {hi}): is the run folder on storage that every node can read?"
            )

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def close(self) -> None:
        """Destroy the process group if :func:`init_distributed` created it."""
        if self.owns_group and tdist.is_initialized():
            # free the run's DDP wrappers first if only reference cycles keep them (their reducers hold the
            # group and its pending work); then every rank reaches here before any tears down: a rank
            # destroying its gloo pairs while a peer still uses them aborts that peer ("terminate called
            # without an active exception"; seen twice in full test runs under load, not in 46 torchrun runs alone)
            gc.collect()
            tdist.barrier()
            tdist.destroy_process_group()


def init_distributed(device: torch.device, timeout_minutes: float = 30.0) -> Dist:
    """Join the torchrun job described by the environment, or return a single-process :class:`Dist`.

    ``device`` is the kind picked for training; on CUDA each process takes GPU ``LOCAL_RANK`` of its
    node and the backend is nccl, on CPU it is gloo. A process group that already exists (e.g. set up by
    a test) is reused and left open.
    """
    world = env_world()
    if world <= 1:
        return Dist(device=device)
    rank, local_rank = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not tdist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        tdist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    if tdist.get_world_size() != world or tdist.get_rank() != rank:
        raise RuntimeError(
            f"process group (rank {tdist.get_rank()} of {tdist.get_world_size()}) does not "
            f"match the environment (RANK={rank}, WORLD_SIZE={world})"
        )
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device, owns_group=owns)
