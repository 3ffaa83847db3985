"""The faster CUSP training step (issue #32): batches held on the device, the training images' masks cached,
and the photo-like augmentations. Each must give what the plain path gives (or what it claims to)."""

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from faceage.data.utkface import PACK_FORMAT, PACK_VERSION, PackedFaces
from train import augment
from train.augment import jpeg, photo_augment
from train.batches import ResidentFaces, get_batch
from train.config import load_config
from train.distributed import Dist
from train.train import RunSetupError, batch_source, build_trainer, load_dataset, train

SIDE = 32


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A raw pack of 24 made-up 32-px 'faces' (smooth blobs, so the classifier's masks are not flat)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    images, names, ages = [], [], []
    for i in range(24):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2)
        colour = rng.uniform(40, 220, 3)
        images.append((blob[..., None] * colour + rng.normal(0, 8, (SIDE, SIDE, 3))).clip(0, 255))
        ages.append(int(rng.integers(1, 90)))
        names.append(f"{ages[-1]}_0_0_2017011617{i:04d}000.jpg.chip.jpg")
    tensors = {
        "images": torch.from_numpy(np.stack(images).astype(np.uint8)),
        "ages": torch.tensor(ages, dtype=torch.int32),
        "genders": torch.zeros(24, dtype=torch.int32),
        "races": torch.zeros(24, dtype=torch.int32),
    }
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "size": str(SIDE), "codec": "raw"}
    path = tmp_path_factory.mktemp("pack") / "tiny32.safetensors"
    save_file(tensors, str(path), {**meta, "names": json.dumps(names), "split": "train", "count": "24"})
    return path


def _cfg(pack, *extra):
    return load_config("train/configs/cusp_tiny.toml", [f"data={pack}", "batch=8", "device=cpu", *extra])


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_resident_batches_are_get_batch(pack, rank, world):
    faces = PackedFaces(pack)
    resident = ResidentFaces(faces, torch.device("cpu"))
    mirrored = 0
    for step in (0, 1, 5):
        x, age, group, idx, flipped = resident.batch(step, 8, 3, True, rank, world)
        x0, age0, group0 = get_batch(faces, step, 8, 3, True, rank, world)
        assert torch.equal(x, x0) and torch.equal(age, age0) and torch.equal(group, group0)
        assert len(idx) == 8 // world and flipped.dtype == torch.bool
        mirrored += int(flipped.sum())
    assert 0 < mirrored < 3 * 8 // world  # the flips were drawn, some of each


def test_cached_mask_step_equals_computed_mask_step(pack, one_thread):
    """Two identical trainers, one reading the cached masks, one computing them: the same weights after 3
    steps (float32 masks; the guided backprop of an image does not depend on its batch-mates)."""
    cfg = _cfg(pack, "cusp.cache_masks=true")
    dist = Dist(device=torch.device("cpu"))
    cached, plain = build_trainer(cfg, dist), build_trainer(cfg, dist)
    source = batch_source(cached, PackedFaces(pack), cfg, dist)
    for step in range(3):
        x, age, group, M = source(step)
        assert M.shape == (8, 1, SIDE, SIDE) and 0 <= M.min() and M.max() <= 1 and M.std() > 0.05
        torch.testing.assert_close(M, plain.mask(x), rtol=1e-5, atol=1e-6)
        torch.manual_seed(step)  # the generator noise comes from the global RNG: the same draws for both
        a = cached.train_step(x, age, group, M)
        torch.manual_seed(step)
        b = plain.train_step(x, age, group)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(cached.T.named_parameters(), plain.T.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_cache_refuses_synthetic_faces(pack):
    cfg = load_config("train/configs/cusp_tiny.toml", ["cusp.cache_masks=true"])
    dist = Dist(device=torch.device("cpu"))
    trainer = build_trainer(cfg, dist)
    with pytest.raises(RunSetupError, match="packed split"):
        batch_source(trainer, load_dataset(cfg, trainer.resolution), cfg, dist)


def test_cached_augmented_run_learns_and_resumes(pack, tmp_path, one_thread):
    """A run with both switches on: reconstruction falls, and a resumed run repeats the same curve."""
    extra = ("cusp.cache_masks=true", "cusp.photo_augment=0.8", "log_every=1", "sample_every=1000", "ckpt_every=6")
    full = train(_cfg(pack, "steps=12", *extra), tmp_path / "a", quiet=True)
    train(_cfg(pack, "steps=6", *extra), tmp_path / "b", quiet=True)
    resumed = train(_cfg(pack, "steps=12", *extra), tmp_path / "b", quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    first, last = np.mean([r["G/rec"] for r in rows[:3]]), np.mean([r["G/rec"] for r in rows[-3:]])
    assert last < 0.8 * first, (first, last)
    assert full["G/rec"] == pytest.approx(resumed["G/rec"], rel=1e-6)


def _faces(n=6):
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    blob = torch.exp(-(xx**2 + (yy * 0.8) ** 2) * 3)
    x = blob * torch.rand(n, 3, 1, 1, generator=g) * 2 - 1 + 0.1 * torch.randn(n, 3, 64, 64, generator=g)
    return x.clamp(-1, 1)


def test_photo_augment_is_seeded_and_off_at_zero():
    x = _faces()
    M = torch.rand(6, 1, 64, 64)
    a, Ma = photo_augment(x, M, 0.9, seed=0, step=4)
    b, Mb = photo_augment(x, M, 0.9, seed=0, step=4)
    c, _ = photo_augment(x, M, 0.9, seed=0, step=5)
    assert torch.equal(a, b) and torch.equal(Ma, Mb) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1 and (a - x).abs().mean() > 0.01
    same, M0 = photo_augment(x, M, 0.0, seed=0, step=4)
    assert same is x and M0 is M


def test_the_mask_moves_with_its_image(monkeypatch):
    """Geometry only: the warped mask is the warped image's own channel, pixel for pixel."""
    for stage in ("EXPOSURE", "CONTRAST", "GAMMA", "WHITE_BALANCE", "SATURATION", "GREY", "BLUR_SIGMA"):
        monkeypatch.setattr(augment, stage, (0.0, 0.0, 1.0))
    monkeypatch.setattr(augment, "NOISE_STD", (0.0, 0.0, 0.0))
    monkeypatch.setattr(augment, "JPEG_QUALITY", (0.0, 50.0, 50.0))
    x = _faces()
    M = (x[:, :1] + 1) / 2
    y, My = photo_augment(x, M, 1.0, seed=2, step=0)
    assert (y - x).abs().mean() > 0.01  # something moved
    torch.testing.assert_close(My, (y[:, :1] + 1) / 2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("quality", [30, 60, 90])
def test_jpeg_stage_matches_libjpeg(quality):
    """The torch JPEG round trip lands within about a grey level of OpenCV's (libjpeg) at the same quality,
    while the compression itself moves the image by more."""
    x = _faces(4)
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).byte()
    ref = []
    for im in u8.permute(0, 2, 3, 1).numpy():
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(im[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        ref.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy())
    ref = torch.from_numpy(np.stack(ref)).permute(0, 3, 1, 2).float()
    ours = (jpeg(u8.float() / 127.5 - 1, torch.full((4,), float(quality))) + 1) * 127.5
    ours_err, moved = (ours - ref).abs().mean(), (u8.float() - ref).abs().mean()
    assert ours_err < 1.5 and ours_err < 0.7 * moved, (ours_err, moved)
