"""Checkpoints: safetensors round trip, atomic write, corrupt files detected."""

import pytest
import torch

from faceage.checkpoint import load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from faceage.errors import CheckpointError, MissingWeightsError


def test_round_trip_with_optimizer(tmp_path):
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.0, 0.99))
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    t, info = optimizer_to_tensors(opt, "opt")
    path = save_checkpoint(tmp_path / "c.safetensors", {**net.state_dict(), **t}, {"step": 7, "opt": info})
    assert not list(tmp_path.glob("*.tmp"))
    tensors, manifest = load_checkpoint(path)
    assert manifest["step"] == 7 and manifest["format_version"] == 1
    assert torch.equal(tensors["weight"], net.weight)
    opt2 = torch.optim.Adam(torch.nn.Linear(4, 3).parameters(), lr=0.5)
    optimizer_from_tensors(opt2, tensors, manifest["opt"], "opt")
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 0.01
    assert all(torch.equal(s1["state"][0][k], s2["state"][0][k]) for k in ("exp_avg", "exp_avg_sq", "step"))


def test_truncated_and_corrupt_files_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.arange(1000.0)}, {"step": 1})
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.safetensors")
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path / "flip.safetensors")
    with pytest.raises(MissingWeightsError):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_atomic_writes_leave_ordinary_file_modes(tmp_path):
    """The temp file of an atomic write is created 0600; checkpoints and PNGs must end up 0644."""
    import numpy as np

    from faceage.io import save_png

    ckpt = save_checkpoint(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {"kind": "test"})
    png = save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "p.png")
    assert ckpt.stat().st_mode & 0o777 == 0o644 and png.stat().st_mode & 0o777 == 0o644
