"""Train a faceage model, in one process or data-parallel under torchrun.

    python -m train.train --config train/configs/cusp_tiny.toml --run runs/tiny [--set steps=100 cusp.lambda_C=0.01 ...]
    python -m train.train --config train/configs/cusp_128.toml --run runs/cusp128 --set max_minutes=9
    python -m train.train --config train/configs/amgan_utkface128.toml --run runs/amgan128
    torchrun --nproc_per_node=4 -m train.train --config train/configs/cusp_128.toml --run-dir runs/cusp128

The config (``train.config``): the run's keys at the top level, the network under ``[net]``, the model's
losses and optimiser under ``[cusp]`` or ``[amgan]``; ``--set`` reaches into a table with a dot
(``net.resolution=64``, ``cusp.lambda_C=0.01``), and an unknown key stops the run before it starts.
The trainer of each model follows ``train.trainer.Trainer``.

A run folder holds ``config.json``, ``stats.jsonl``, TensorBoard events (``tb/``), sample grids
(``samples/``) and checkpoints ``ckpt-XXXXXXXX.safetensors`` (atomic, the last ``keep_ckpts`` kept).
``--set init_weights=assets/X.safetensors`` starts a new run from exported weights (fine-tuning).
Running the same command again resumes from the newest readable checkpoint (a corrupt newest one is
reported and the previous one used) and continues the same loss curve: the batch of step k, the target
ages, sigmas and noise depend only on the seed and k. Under torchrun (see ``train.distributed``),
``batch`` is the global batch, only rank 0 writes to the run folder, and the checkpoints are the
single-process ones: a run resumes on any number of processes. A killed run loses at most the steps
since its last checkpoint: the stats and TensorBoard scalars logged after it are dropped on resume, and
half-written checkpoint files are removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path (torchrun train/train.py): import the package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from faceage.age.classifier import AgeClassifier
from faceage.checkpoint import load_checkpoint, save_checkpoint, unprefixed
from faceage.cusp.editor import pick_device
from faceage.data.utkface import PackedFaces
from faceage.errors import CheckpointError, FaceAgeError
from train.amgan.data import with_sign_labels
from train.amgan.trainer import AMGANTrainer
from train.batches import ResidentFaces, SyntheticFaces, get_batch
from train.config import TrainConfig, load_config
from train.cusp.mask_cache import MaskCache
from train.cusp.trainer import CUSPTrainer
from train.distributed import Dist, env_rank, env_world, init_distributed
from train.trainer import Trainer

log = logging.getLogger("faceage.train")

EMA_NAMES = {"cusp": "T_ema", "amgan": "G_ema"}  # the EMA generator's prefix in a run's checkpoints


class RunSetupError(ValueError):
    """A run cannot start as configured (data, weights, model name): reported in one line, no traceback."""


def load_dataset(cfg: TrainConfig, resolution: int):
    """The training items of ``cfg.model``: a packed split (see ``train.pack_data``) or synthetic faces for
    tests; for AMGAN with each face's weak sign labels (and zone placement) attached (``train.amgan.data``)."""
    ds = _images(cfg, resolution)
    if cfg.model == "amgan":
        return with_sign_labels(ds, placement=cfg.amgan.face_placement)
    return ds


def _images(cfg: TrainConfig, resolution: int):
    if cfg.data == "synthetic":
        return SyntheticFaces(n=64, size=resolution, seed=cfg.seed)
    ds = PackedFaces(cfg.data)
    if ds.size != resolution:
        raise RunSetupError(f"{cfg.data} holds {ds.size}px faces but the model is {resolution}px: repack the data")
    log.info(
        "data: %d faces from %s (%d unreadable and %d malformed entries skipped)",
        len(ds),
        cfg.data,
        ds.skipped_reads,
        ds.skipped_names,
    )
    return ds


def load_classifier(cfg: TrainConfig) -> AgeClassifier:
    return AgeClassifier.load(cfg.cusp.classifier)


def build_trainer(cfg: TrainConfig, dist: Dist) -> Trainer:
    """The trainer of ``cfg.model`` on ``dist.device``; it wraps its trained networks with ``dist``."""
    if cfg.model == "amgan":
        return AMGANTrainer(cfg, dist.device, dist)
    return CUSPTrainer(cfg, load_classifier(cfg), dist.device, dist)


def batch_source(trainer, dataset, cfg: TrainConfig, dist: Dist):
    """step -> this rank's ``(x, age, *labels)`` of that step (:func:`train.batches.get_batch`).

    With ``cusp.cache_masks`` the packed split is held on the device (:class:`ResidentFaces`, the same
    batches) and the masks of its images and their mirrors are computed once (:class:`MaskCache`); each
    batch then carries its masks as a last label.
    """
    if cfg.model == "cusp" and cfg.cusp.cache_masks:
        if not isinstance(dataset, PackedFaces):
            raise RunSetupError("cusp.cache_masks needs a packed split (data=...), not synthetic faces")
        t0 = time.time()
        faces = ResidentFaces(dataset, dist.device)
        cache = MaskCache(faces, trainer.mask)
        log.info("masks of %d faces and their mirrors cached in %.1f s", len(faces), time.time() - t0)

        def resident(step: int):
            x, age, group, idx, flipped = faces.batch(
                step, cfg.batch, cfg.seed, cfg.augment_flip, dist.rank, dist.world
            )
            return x, age, group, cache.lookup(idx, flipped)

        return resident
    return lambda step: get_batch(dataset, step, cfg.batch, cfg.seed, cfg.augment_flip, dist.rank, dist.world)


def checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob("ckpt-*.safetensors"))


def newest_checkpoint(run: Path) -> tuple[Path, dict, dict] | None:
    """(path, tensors, manifest) of the newest readable checkpoint of ``run``; None if it has none."""
    for path in reversed(checkpoints(run)):
        try:
            tensors, manifest = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        return path, tensors, manifest
    return None


def resume(trainer, run: Path) -> int:
    """Load the newest readable checkpoint of ``run``; returns its step (0 if none)."""
    found = newest_checkpoint(run)
    if found is None:
        return 0
    path, tensors, manifest = found
    trainer.load_state(tensors, manifest["trainer"], manifest["step"])
    log.info("resumed from %s (step %d)", path.name, manifest["step"])
    return manifest["step"]


def init_from_weights(trainer, path: str | Path) -> dict:
    """Start a new run from exported weights (``train.export``) or from another run's checkpoint (its EMA
    generator): fine-tuning, or a CPU run carried on.

    Both the trained generator and its EMA copy start from the file; D, the optimisers and the step start
    fresh. The file must hold the same network as the config (``net``); else a RunSetupError says what differs.
    """
    model = trainer.cfg.model
    tensors, manifest = load_checkpoint(path)
    kind = manifest.get("kind", "")
    if kind == f"{model}-train":
        tensors, net = unprefixed(tensors, EMA_NAMES[model]), manifest.get("config", {}).get("net")
    elif kind == f"{model}-generator":
        net = manifest.get("net") or manifest.get("config")
    else:
        raise RunSetupError(
            f"{path} holds {kind or 'unknown'} weights, not a {model} generator: give a file "
            f"written by python -m train.export, or a checkpoint of a {model} run"
        )
    live, ema = trainer.generators()
    try:
        live.load_state_dict(tensors)
    except RuntimeError as e:  # missing/unexpected keys or shape mismatches: another network config
        raise RunSetupError(
            f"{path} does not fit this config's network ({' '.join(str(e).split())[:300]}); "
            f"use the [net] settings it was trained with: {net}"
        ) from None
    ema.load_state_dict(live.state_dict())
    log.info("initialised the generator from %s (trained %s steps)", path, manifest.get("step", "?"))
    return manifest


def checkpoint_step(path: Path) -> int:
    return int(path.name[len("ckpt-") :].split(".")[0])


def write_checkpoint(trainer, cfg: TrainConfig, run: Path, step: int) -> Path:
    """Save atomically, then prune to the newest ``keep_ckpts`` at or before ``step``.

    Newer files (left by a run that resumed from an older checkpoint because they were unreadable) are
    not counted, so the checkpoints this run can fall back to are never pruned in their favour.
    """
    tensors, info = trainer.state_tensors()
    path = save_checkpoint(
        run / f"ckpt-{step:08d}.safetensors",
        tensors,
        {"kind": f"{cfg.model}-train", "step": step, "config": cfg.to_dict(), "trainer": info},
    )
    older = [p for p in checkpoints(run) if checkpoint_step(p) <= step]
    for old in older[: -cfg.keep_ckpts]:
        old.unlink()
    return path


def clean_after_kill(run: Path, start: int) -> None:
    """Undo what a killed run left past its last checkpoint: temp files, stats rows after ``start``."""
    for tmp in run.glob("ckpt-*.tmp"):
        log.info("removing half-written %s", tmp.name)
        tmp.unlink()
    stats = run / "stats.jsonl"
    if stats.is_file():
        rows = [line for line in stats.read_text().splitlines() if line.strip()]
        kept = []
        for line in rows:
            try:
                if json.loads(line)["step"] <= start:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # a line cut by the kill
                pass
        if len(kept) != len(rows):
            stats.write_text("".join(line + "\n" for line in kept))


def grid_image(samples: torch.Tensor) -> np.ndarray:
    """[N, R, 3, S, S] in [-1, 1] -> one uint8 image, a row per sample."""
    n, r, _, s, _ = samples.shape
    img = samples.permute(0, 3, 1, 4, 2).reshape(n * s, r * s, 3)
    return ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def train(cfg: TrainConfig, run: Path, quiet: bool = False) -> dict:
    """Run (or resume) training until ``cfg.steps`` or ``cfg.max_minutes``; returns the last stats.

    Under torchrun every process calls this; they share the work of each global batch of ``cfg.batch``.
    """
    dist = init_distributed(pick_device(cfg.device))
    try:
        return _train(cfg, run, quiet, dist)
    finally:
        dist.close()


def _train(cfg: TrainConfig, run: Path, quiet: bool, dist: Dist) -> dict:
    is_main = dist.is_main
    dist.local_size(cfg.batch)  # fail early, on every rank, if the batch does not split
    run.mkdir(parents=True, exist_ok=True)
    if is_main:
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    trainer = build_trainer(cfg, dist)
    dataset = load_dataset(cfg, trainer.resolution)
    if cfg.model == "amgan":
        trainer.calibration = dataset.calibration  # the texture CDF of the judge (amgan.lambda_sign, amgan.judge)
    start = resume(trainer, run)
    dist.check_same(start, "step to resume from")
    if start == 0 and cfg.init_weights:
        init_from_weights(trainer, cfg.init_weights)
    if dist.enabled:
        log.info(
            "training on %d processes (%s, backend %s): %d images per process and step",
            dist.world,
            dist.device.type,
            torch.distributed.get_backend(),
            cfg.batch // dist.world,
        )
    next_batch = batch_source(trainer, dataset, cfg, dist)
    writer = jsonl = fixed = None
    if is_main:
        clean_after_kill(run, start)
        fixed = get_batch(dataset, 0, min(4, len(dataset)), cfg.seed + 12345, flip=False)[0]
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tb"), purge_step=start)
        jsonl = open(run / "stats.jsonl", "a")
    t0, stats, step = time.time(), {}, start
    try:
        bar = tqdm(
            range(start, cfg.steps), initial=start, total=cfg.steps, disable=quiet or not is_main, desc=cfg.model
        )
        for step in bar:
            stats = trainer.train_step(*next_batch(step))
            done = step + 1
            if done % cfg.log_every == 0:
                stats = dist.mean_stats(scalars(stats))
                stats["images_per_s"] = (done - start) * cfg.batch / (time.time() - t0)
                if is_main:
                    jsonl.write(json.dumps({"step": done, **stats}) + "\n")
                    jsonl.flush()
                    for k, v in stats.items():
                        writer.add_scalar(k, v, done)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if k.startswith("G/")})
            if is_main and (done % cfg.sample_every == 0 or done == cfg.steps):
                grid = grid_image(trainer.samples(fixed))
                (run / "samples").mkdir(exist_ok=True)
                Image.fromarray(grid).save(run / "samples" / f"{done:08d}.png")
                writer.add_image("samples", grid, done, dataformats="HWC")
            out_of_time = bool(cfg.max_minutes) and dist.any_rank((time.time() - t0) > cfg.max_minutes * 60)
            if is_main and (done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time):
                write_checkpoint(trainer, cfg, run, done)
            if out_of_time:
                log.info("stopping at step %d: max_minutes reached", done)
                break
    finally:
        if is_main:
            jsonl.close()
            writer.close()
    dist.barrier()  # the last checkpoint is on disk before any rank returns
    return {"step": trainer.step, **scalars(stats)}


def scalars(stats: dict) -> dict[str, float]:
    """A step's stats as floats (a trainer may return 0-d tensors, read only when logged)."""
    return {k: float(v) for k, v in stats.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="TOML config, e.g. train/configs/cusp_tiny.toml")
    p.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        required=True,
        help="run folder (created; resumed if it has checkpoints); under torchrun spell it --run-dir "
        "(torchrun's own parser takes --run for its --run-path)",
    )
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides: steps=100, net.resolution=64, cusp.lambda_C=0.01, amgan.patch=32",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    rank = env_rank()  # rank 0 logs; the others only report errors
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.ERROR,
        format=f"%(asctime)s {f'[rank {rank}] ' if rank else ''}%(name)s: %(message)s",
    )
    try:
        cfg = load_config(args.config, args.set)
        Dist(world=env_world()).local_size(cfg.batch)  # the global batch must split over the processes
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    try:
        train(cfg, Path(args.run))
    except (RunSetupError, FaceAgeError) as e:  # a bad init_weights file, data of the wrong size, ...
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
