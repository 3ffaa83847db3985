"""Data-parallel CUSP training (torch.distributed, gloo on CPU): 2 processes vs 1 on the same global batch.

Both ranks must hold bit-identical weights after every step (identical all-reduced gradients and
optimiser steps, hence identical EMA), and the 2-process run must follow the 1-process run of the same
global batch up to float rounding (two half-batch gradients averaged vs one full-batch gradient).
A checkpoint written by a 2-process run (launched with torchrun, as a user would) resumes in 1 process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from faceage.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
CONFIG = "train/configs/cusp_tiny.toml"
# R1 on steps 0 and 2, so the lazy R1 under DDP is covered; global batch 4 = 2 ranks x 2.
OVERRIDES = ["batch=4", "cusp.r1_every=2", "log_every=2", "ckpt_every=2", "sample_every=1000"]
STEPS = 4


def _config(steps):
    from train.config import load_config

    return load_config(REPO / CONFIG, [f"steps={steps}", *OVERRIDES])


def _train_here(run: Path, steps: int):
    """Single-process training in this process, on one thread (as each torchrun worker runs)."""
    from train.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(_config(steps), run, quiet=True)
    finally:
        torch.set_num_threads(threads)


def _worker(rank: int, world: int, port: int, run: str) -> None:
    """One rank: torchrun's environment by hand, then train() with a weights check after each step."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import torch.distributed as tdist

    from train.cusp.trainer import CUSPTrainer
    from train.train import train

    step_once, checked = CUSPTrainer.train_step, []

    def train_step_then_compare(self, *batch):
        out = step_once(self, *batch)
        mine = torch.cat([p.detach().reshape(-1) for m in (self.T, self.D, self.T_ema) for p in m.parameters()])
        rank0 = mine.clone()
        tdist.broadcast(rank0, src=0)
        assert torch.equal(mine, rank0), f"rank {rank}: weights differ from rank 0 after step {self.step}"
        checked.append(self.step)
        return out

    CUSPTrainer.train_step = train_step_then_compare
    train(_config(STEPS), Path(run), quiet=True)
    assert checked == list(range(1, STEPS + 1)), checked


def _assert_same_training_state(a_path: Path, b_path: Path) -> None:
    """Same keys; RNG states and optimiser step counts exact; float tensors equal up to rounding."""
    a, ma = load_checkpoint(a_path)
    b, mb = load_checkpoint(b_path)
    assert a.keys() == b.keys() and ma["step"] == mb["step"]
    for k in a:
        if not a[k].is_floating_point() or k.endswith(".step"):
            assert torch.equal(a[k], b[k]), k
        else:  # relative to the tensor's scale, far below any real bug (a missed all-reduce is ~50%)
            # Weights: 1e-4 (rounding seen: <= 2e-5). Adam moments: 1e-3, since with beta1 = 0 exp_avg IS the
            # last gradient, a sum over the batch with cancellation, where rounding of the DDP all-reduce
            # vs one process's sum shows up to ~1.1e-4 of the tensor's max.
            scale = a[k].abs().max().item()
            rel = 1e-3 if k.startswith("opt_") else 1e-4
            assert (a[k] - b[k]).abs().max().item() <= rel * scale + 1e-7, k


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("one") / "run"
    _train_here(run, STEPS)
    return run


def test_two_ranks_stay_identical_and_match_one_process(tmp_path, one_process_run, free_port):
    run = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, free_port(), str(run)), nprocs=2)  # raises if a rank failed
    ckpts = sorted(p.name for p in run.glob("ckpt-*.safetensors"))
    assert ckpts == ["ckpt-00000002.safetensors", "ckpt-00000004.safetensors"]  # rank 0 wrote them, once
    _assert_same_training_state(one_process_run / ckpts[-1], run / ckpts[-1])
    import json

    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (one_process_run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [r["step"] for r in ref] == [2, 4]  # one writer, not two
    for r, e in zip(rows, ref):  # logged losses are averaged over the ranks: the global batch's values
        for k in e:
            if k != "images_per_s":
                assert r[k] == pytest.approx(e[k], rel=1e-4), k


def test_torchrun_checkpoint_resumes_in_one_process(tmp_path, one_process_run, free_port, caplog):
    """torchrun (c10d rendezvous, the multi-node form, on one node) by script path, then 1 process."""
    run = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        "train/train.py",
        "--config",
        CONFIG,
        "--run-dir",
        str(run),
        "--set",
        "steps=2",
        *OVERRIDES,
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "training on 2 processes (cpu, backend gloo)" in done.stderr
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-00000002.safetensors"]
    with caplog.at_level("INFO", logger="faceage.train"):
        _train_here(run, STEPS)  # resumes the 2-process checkpoint on 1 process
    assert "resumed from ckpt-00000002.safetensors (step 2)" in caplog.text
    _assert_same_training_state(one_process_run / "ckpt-00000004.safetensors", run / "ckpt-00000004.safetensors")
