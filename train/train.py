"""Train a faceage model.

    python -m train.train --config train/configs/cusp_tiny.toml --run runs/tiny [--set steps=100 ...]
    python -m train.train --config train/configs/cusp_128.toml --run runs/cusp128 --set max_minutes=9

A run folder holds ``config.json``, ``stats.jsonl``, TensorBoard events (``tb/``), sample grids
(``samples/``) and checkpoints ``ckpt-XXXXXXXX.safetensors`` (atomic, the last ``keep_ckpts`` kept).
Running the same command again resumes from the newest readable checkpoint (a corrupt newest one is
reported and the previous one used) and continues the same loss curve: the batch of step k, the target
ages, sigmas and noise depend only on the seed and k.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from faceage.checkpoint import load_checkpoint, save_checkpoint
from faceage.editor import pick_device
from faceage.errors import CheckpointError
from train.batches import SyntheticFaces, get_batch
from train.config import TrainConfig, load_config

log = logging.getLogger("faceage.train")


def load_dataset(cfg: TrainConfig, resolution: int):
    """The training images: a packed split (see ``train.pack_data``) or synthetic faces for tests."""
    if cfg.data == "synthetic":
        return SyntheticFaces(n=64, size=resolution, seed=cfg.seed)
    from faceage.data.utkface import PackedFaces

    ds = PackedFaces(cfg.data)
    if ds.size != resolution:
        raise ValueError(f"{cfg.data} holds {ds.size}px faces but the model is {resolution}px: repack the data")
    return ds


def load_classifier(cfg: TrainConfig):
    from faceage.models.age_classifier import AgeClassifier

    return AgeClassifier.load(cfg.classifier)


def build_trainer(cfg: TrainConfig, device):
    if cfg.model != "cusp":
        raise ValueError(f"unknown model {cfg.model!r}")
    from train.cusp_trainer import CUSPTrainer

    return CUSPTrainer(cfg, load_classifier(cfg), device)


def checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob("ckpt-*.safetensors"))


def resume(trainer, run: Path) -> int:
    """Load the newest readable checkpoint of ``run``; returns its step (0 if none)."""
    for path in reversed(checkpoints(run)):
        try:
            tensors, manifest = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        trainer.load_state(tensors, manifest["trainer"], manifest["step"])
        log.info("resumed from %s (step %d)", path.name, manifest["step"])
        return manifest["step"]
    return 0


def write_checkpoint(trainer, cfg: TrainConfig, run: Path, step: int) -> Path:
    tensors, info = trainer.state_tensors()
    path = save_checkpoint(run / f"ckpt-{step:08d}.safetensors", tensors,
                           {"kind": f"{cfg.model}-train", "step": step, "config": cfg.to_dict(), "trainer": info})
    for old in checkpoints(run)[:-cfg.keep_ckpts]:
        old.unlink()
    return path


def grid_image(samples: torch.Tensor) -> np.ndarray:
    """[N, R, 3, S, S] in [-1, 1] -> one uint8 image, a row per sample."""
    n, r, _, s, _ = samples.shape
    img = samples.permute(0, 3, 1, 4, 2).reshape(n * s, r * s, 3)
    return ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def train(cfg: TrainConfig, run: Path, quiet: bool = False) -> dict:
    """Run (or resume) training until ``cfg.steps`` or ``cfg.max_minutes``; returns the last stats."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    device = pick_device(cfg.device)
    trainer = build_trainer(cfg, device)
    dataset = load_dataset(cfg, trainer.net_cfg.resolution)
    start = resume(trainer, run)
    fixed = get_batch(dataset, 0, min(4, len(dataset)), cfg.seed + 12345, flip=False)[0]
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "tb"))
    t0, stats, step = time.time(), {}, start
    with open(run / "stats.jsonl", "a") as jsonl:
        bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=quiet, desc=cfg.model)
        for step in bar:
            x, age, group = get_batch(dataset, step, cfg.batch, cfg.seed, cfg.augment_flip)
            stats = trainer.train_step(x, age, group)
            done = step + 1
            if done % cfg.log_every == 0:
                stats["images_per_s"] = (done - start) * cfg.batch / (time.time() - t0)
                jsonl.write(json.dumps({"step": done, **stats}) + "\n")
                jsonl.flush()
                for k, v in stats.items():
                    writer.add_scalar(k, v, done)
                bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if k.startswith("G/")})
            if done % cfg.sample_every == 0 or done == cfg.steps:
                grid = grid_image(trainer.samples(fixed))
                (run / "samples").mkdir(exist_ok=True)
                Image.fromarray(grid).save(run / "samples" / f"{done:08d}.png")
                writer.add_image("samples", grid, done, dataformats="HWC")
            out_of_time = cfg.max_minutes and (time.time() - t0) > cfg.max_minutes * 60
            if done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time:
                write_checkpoint(trainer, cfg, run, done)
            if out_of_time:
                log.info("stopping at step %d: max_minutes reached", done)
                break
    writer.close()
    return {"step": trainer.step, **stats}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="TOML config, e.g. train/configs/cusp_tiny.toml")
    p.add_argument("--run", required=True, help="run folder (created; resumed if it has checkpoints)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.set)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    train(cfg, Path(args.run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
