"""Training throughput: images/s and peak GPU memory of a config under several settings; asserts nothing.

    PYTHONPATH=. python train/bench/train_throughput.py --config train/configs/cusp_128.toml \
        --variant "batch=32" --variant "batch=32 amp=bf16" --variant "batch=64 channels_last=true" [--steps 20]

Each variant is a set of ``--set``-style overrides on the config. It builds the trainer (fresh weights),
runs ``--warmup`` steps (the first is a lazy-R1 step), then times ``--steps`` steps, synchronising the
device before and after. Batches come as in training (``train.train.batch_source``: with
``cusp.cache_masks=true`` the split is held on the device and its masks are computed first, untimed).
The data is the config's packed split (``train.train.load_dataset``), loaded once per model, file and
resolution. Prints one table row per variant; that table goes to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.cusp.editor import pick_device  # noqa: E402
from train.config import load_config  # noqa: E402
from train.distributed import Dist  # noqa: E402
from train.train import batch_source, build_trainer, load_dataset  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg, dataset, device, warmup: int, steps: int) -> tuple[float, float]:
    """(images/s, peak memory in GiB; 0 on CPU) of ``steps`` timed training steps."""
    dist = Dist(device=device)
    trainer = build_trainer(cfg, dist)
    next_batch = batch_source(trainer, dataset, cfg, dist)
    for k in range(warmup):
        trainer.train_step(*next_batch(k))
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for k in range(warmup, warmup + steps):
        trainer.train_step(*next_batch(k))
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return steps * cfg.batch / seconds, peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    p.add_argument("--variant", action="append", default=[], help="space-separated overrides (repeatable)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args(argv)
    datasets = {}
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    print("| variant | images/s | peak GPU memory |\n|---|---|---|")
    for variant in a.variant or [""]:
        cfg = load_config(a.config, [*a.set, *variant.split()])
        device = pick_device(cfg.device)
        key = (cfg.model, cfg.data, cfg.net.resolution)
        if key not in datasets:
            datasets[key] = load_dataset(cfg, key[2])
        try:
            ips, peak = measure(cfg, datasets[key], device, a.warmup, a.steps)
        except Exception as e:  # one failing variant must not cost the others (a lent GPU's minutes)
            print(f"| {variant or '(config)'} | failed: {type(e).__name__}: {' '.join(str(e).split())[:200]} | |")
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"| {variant or '(config)'} | {ips:,.0f} | {peak:.2f} GiB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
