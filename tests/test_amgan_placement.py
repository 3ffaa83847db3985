"""AMGAN zone placement from each face's own landmarks (train.amgan.placement)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from faceage.amgan.maps import SIGNS
from faceage.face.align import template_points
from train.amgan import placement as amgan_placement
from train.amgan.maps import MapBasis
from train.amgan.placement import IDENTITY, PlacedMaps, face_theta, packed_placement, place

S = 64
pytestmark = pytest.mark.usefixtures("one_thread")


def _moved(pts: np.ndarray, shift=(0.0, 0.0), scale=1.0, degrees=0.0) -> np.ndarray:
    """``pts`` turned and scaled about the crop centre, then shifted (pixels)."""
    c = (S - 1) / 2
    a = math.radians(degrees)
    R = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (pts - c) @ R.T + c + np.asarray(shift)


def _targets(n: int):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, generator=g), torch.rand(n, len(SIGNS), generator=g)


def _maps(basis: MapBasis, n: int = 3) -> torch.Tensor:
    return basis.maps(*_targets(n))


def test_template_landmarks_give_the_identity_placement():
    theta = face_theta(template_points(S), S)
    assert torch.allclose(theta, IDENTITY, atol=1e-6)
    m = _maps(MapBasis(S))
    assert torch.allclose(place(m, theta.expand(len(m), 2, 3)), m, atol=1e-5)
    # from the wider canvas: the crop in its middle, equal to the plain map away from the crop's edges
    wide = PlacedMaps(S).maps(*_targets(3), theta.expand(3, 2, 3))
    assert wide.shape == m.shape and torch.allclose(wide[..., 8:-8, 8:-8], m[..., 8:-8, 8:-8], atol=1e-5)


@pytest.mark.parametrize("move", [dict(shift=(3.0, -2.0)), dict(scale=1.06, degrees=5.0, shift=(1.5, 2.5))])
def test_placed_template_map_is_the_map_drawn_on_the_faces_landmarks(move):
    pts = _moved(template_points(S), **move)
    placed = PlacedMaps(S).maps(*_targets(3), face_theta(pts, S).expand(3, 2, 3))
    m = S // 4  # the face's own zones drawn on the same wider canvas, cropped
    want = MapBasis(S + 2 * m, pts + m).maps(*_targets(3))[..., m : m + S, m : m + S]
    err = (placed - want).abs()
    unplaced = (PlacedMaps(S).maps(*_targets(3), IDENTITY.expand(3, 2, 3)) - want).abs().mean()
    # left: resampling a blurred zone edge (bilinear) against rasterising it turned
    assert err.mean() < 0.006 and err.max() < 0.1, (err.mean(), err.max())
    assert unplaced > 5 * err.mean(), unplaced  # the template's own zones would be clearly wrong for this face


def test_placement_cache_is_reused_and_remade_for_other_faces(tmp_path, monkeypatch):
    calls = []

    def fake_measure(ds):
        calls.append(len(ds))
        theta = IDENTITY.expand(len(ds), 2, 3).clone()
        theta[:, 0, 2] = 0.1
        return theta, torch.ones(len(ds), dtype=torch.bool)

    monkeypatch.setattr(amgan_placement, "measure", fake_measure)

    class Pack(SimpleNamespace):
        def __len__(self):
            return len(self.names)

    pack = Pack(path=tmp_path / "split.safetensors", names=["a.jpg", "b.jpg"], size=S)
    cache = amgan_placement.placement_path(pack.path)
    assert cache.name == "split.placement.safetensors"
    first = packed_placement(pack)
    assert cache.is_file() and calls == [2] and first.shape == (2, 2, 3)
    assert torch.equal(packed_placement(pack), first) and calls == [2]  # read back, not measured again
    pack.names = ["a.jpg", "c.jpg"]
    packed_placement(pack)
    assert calls == [2, 2]  # other faces: measured again


def test_missing_cache_without_dlib_says_how_to_make_it(tmp_path, monkeypatch):
    def no_dlib(ds):
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr(amgan_placement, "measure", no_dlib)
    pack = SimpleNamespace(path=tmp_path / "p.safetensors", names=["a.jpg"], size=S)
    from faceage.data.utkface import DatasetError

    with pytest.raises(DatasetError, match="python -m train.amgan.placement"):
        packed_placement(pack)


def test_training_items_carry_the_placement_and_reach_the_maps():
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch
    from train.config import load_config

    ds = with_sign_labels(SyntheticFaces(n=8, size=S, seed=0), placement=True)
    x, age, signs, theta = get_batch(ds, 0, 4, 0, False)
    assert theta.shape == (4, 2, 3) and torch.equal(theta, IDENTITY.expand(4, 2, 3))  # no landmarks: template

    cfg = load_config("train/configs/amgan_tiny.toml", ["batch=4", "amgan.face_placement=true"])

    def prepared(th):
        return AMGANTrainer(cfg, torch.device("cpu")).prepare(x, age, signs, th)  # same seed: same draws

    same, moved, plain = (
        prepared(theta),
        prepared(torch.tensor([[1.0, 0, 0.2], [0, 1.0, 0]]).expand(4, 2, 3)),
        prepared(None),
    )
    # the template placement: the plain map but near the crop's edges (the wider canvas, see PlacedMaps)
    near = (same["As_p"] - plain["As_p"]).abs().mean()
    assert near < 2e-3 and torch.equal(same["I_p"], plain["I_p"])
    assert (moved["As_p"] - plain["As_p"]).abs().mean() > 10 * near and torch.equal(moved["I_p"], plain["I_p"])
    assert (moved["At_p"] - plain["At_p"]).abs().mean() > 10 * near  # the target map moves with the face too


def test_real_aligned_face_gets_a_placement_near_the_template():
    from conftest import utk_test_crop
    from PIL import Image

    crop = np.asarray(Image.fromarray(utk_test_crop(3)).resize((128, 128), Image.LANCZOS))
    theta, found = amgan_placement.measure(_OneFace(crop))
    assert found.tolist() == [True]
    scale = theta[0, :, :2].det().abs().sqrt().item()
    assert 0.85 < scale < 1.15 and (theta[0, :, 2] * 63.5).norm() < 8  # an aligned crop: close to the template
    assert not torch.allclose(theta[0], IDENTITY, atol=1e-4)  # but its own


class _OneFace:
    def __init__(self, crop):
        self.images, self.size = torch.from_numpy(crop.copy())[None], crop.shape[0]

    def __len__(self):
        return 1
