"""Training survives faults: SIGKILL mid-run, corrupt or truncated checkpoints (issue #9).

A killed run resumed from its last checkpoint must end bit-identical (CPU, fixed seed, one thread) to a
run that was never interrupted, with the same loss curve; an unreadable newest checkpoint is reported
and the previous good one used, and pruning never deletes the checkpoints a run can fall back to.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from faceage.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
CONFIG = "train/configs/cusp_tiny.toml"


def _start(run: Path, steps: int, extra=()) -> subprocess.Popen:
    """``python -m train.train`` in a subprocess on one thread; its output goes to ``run``.log."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "train.train",
        "--config",
        CONFIG,
        "--run",
        str(run),
        "--set",
        f"steps={steps}",
        "ckpt_every=3",
        "log_every=1",
        "sample_every=1000",
        *extra,
    ]
    log = open(f"{run}.log", "ab")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, run: Path) -> None:
    assert proc.wait(timeout=240) == 0, Path(f"{run}.log").read_text()[-3000:]


def _curve(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]


def _assert_identical(a: Path, b: Path) -> None:
    ta, ma = load_checkpoint(a)
    tb, mb = load_checkpoint(b)
    assert ta.keys() == tb.keys() and ma["step"] == mb["step"]
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    steps = 15
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = _start(full, steps)  # the uninterrupted run, alongside
    victim = _start(killed, steps)
    deadline = time.time() + 180
    while not list(killed.glob("ckpt-*.safetensors")):  # at least one checkpoint written
        assert victim.poll() is None, "the run ended before it could be killed"
        if time.time() > deadline:  # a guard against hanging, not a speed check
            pytest.fail("no checkpoint within 180 s:\n" + Path(f"{killed}.log").read_text()[-3000:])
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    assert not (killed / f"ckpt-{steps:08d}.safetensors").exists()  # killed mid-way
    _finish(_start(killed, steps), killed)  # the same command resumes
    _finish(reference, full)
    assert "resumed from ckpt-" in Path(f"{killed}.log").read_text()
    _assert_identical(full / f"ckpt-{steps:08d}.safetensors", killed / f"ckpt-{steps:08d}.safetensors")
    assert _curve(killed) == _curve(full)  # the same losses, each step logged once
    assert not list(killed.glob("*.tmp"))


def _train(run: Path, steps: int, *extra):
    from train.config import load_config
    from train.train import train

    cfg = load_config(REPO / CONFIG, [f"steps={steps}", "ckpt_every=2", "log_every=1", "sample_every=1000", *extra])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg, run, quiet=True)
    finally:
        torch.set_num_threads(threads)


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, caplog):
    run = tmp_path / "run"
    _train(run, 4)  # checkpoints at 2 and 4
    newest = run / "ckpt-00000004.safetensors"
    good = newest.read_bytes()
    newest.write_bytes(good[: len(good) // 2])  # e.g. a disk that filled up
    with caplog.at_level(logging.INFO, logger="faceage.train"):
        _train(run, 4)
    assert "skipping unreadable checkpoint" in caplog.text and "truncated or corrupt" in caplog.text
    assert "resumed from ckpt-00000002.safetensors (step 2)" in caplog.text
    assert newest.read_bytes() == good  # steps 3-4 redone from step 2: the same checkpoint again


def test_pruning_keeps_the_checkpoint_a_run_fell_back_to(tmp_path):
    run = tmp_path / "run"
    _train(run, 4, "keep_ckpts=2")
    corrupt = run / "ckpt-00000004.safetensors"
    data = bytearray(corrupt.read_bytes())
    data[-100] ^= 0xFF  # a flipped bit: caught by the checksum
    corrupt.write_bytes(bytes(data))
    _train(run, 3, "keep_ckpts=1", "ckpt_every=1")  # resumes from 2, writes 3
    names = sorted(p.name for p in run.glob("ckpt-*"))
    assert names == ["ckpt-00000003.safetensors", "ckpt-00000004.safetensors"]  # 3 kept, not the bad 4 alone
    assert load_checkpoint(run / "ckpt-00000003.safetensors")[1]["step"] == 3
