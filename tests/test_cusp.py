"""CUSP: network shapes, the mask (Eq. 1), the skip blur (Eq. 2), training and resume."""

import json

import pytest
import torch

from faceage.age.classifier import GuidedReLU
from faceage.cusp.mask import blur_skip, guided_backprop, mask_from_saliency, to_feature_sigma
from faceage.cusp.model import CUSPConfig, CUSPGenerator, Discriminator, age_soft_onehot
from faceage.filters import gaussian_blur


@pytest.mark.parametrize("res,n_down", [(32, 3), (64, 4), (128, 5)])
def test_shapes_at_each_resolution(res, n_down):
    cfg = CUSPConfig(
        resolution=res, n_down=n_down, enc_base=8, enc_max=32, channel_base=16 * res, channel_max=32, age_dim=16
    )
    T, D = CUSPGenerator(cfg), Discriminator(cfg)
    x = torch.randn(2, 3, res, res)
    c, f_c, s = T.encode(x)
    assert c.shape == (2, 32, res // 2**n_down, res // 2**n_down)
    assert f_c.shape == (2, cfg.enc_channels[1], res // 4, res // 4)
    assert s.shape == (2, cfg.style_dim)
    y = T(x, torch.tensor([5.0, 80.0]))
    assert y.shape == x.shape
    assert D(y, torch.tensor([0, 9])).shape == (2,)


def test_age_soft_onehot_is_continuous():
    v = age_soft_onehot(torch.tensor([30.0, 30.25, 100.0]))
    assert v.sum(1).allclose(torch.ones(3))
    assert v[0, 30] == 1 and v[1, 30] == 0.75 and v[1, 31] == 0.25 and v[2, 100] == 1


def test_const_noise_makes_decoding_deterministic():
    cfg = CUSPConfig(resolution=32, n_down=3, enc_base=8, channel_base=512, channel_max=32, age_dim=16)
    T = CUSPGenerator(cfg)
    for p in T.parameters():  # non-zero noise strength, so the test can fail
        if p.dim() == 0:
            p.data.fill_(0.5)
    x = torch.randn(1, 3, 32, 32)
    a = torch.tensor([40.0])
    assert torch.equal(T(x, a, noise="const"), T(x, a, noise="const"))
    assert not torch.equal(T(x, a, noise="random"), T(x, a, noise="random"))


class ToyGuided(torch.nn.Module):
    """logits = GuidedReLU(x) summed per sample: the gradient is 1 where x > 0, else 0."""

    def forward(self, x, guided=False):
        y = GuidedReLU.apply(x) if guided else torch.relu(x)
        return y.flatten(1).sum(1, keepdim=True)


def test_guided_backprop_zero_where_relus_block():
    x = torch.randn(2, 3, 16, 16)
    B = guided_backprop(ToyGuided(), x)
    assert torch.equal(B, (x > 0).float())


def test_mask_eq1_in_unit_range_and_follows_saliency():
    B = torch.zeros(2, 3, 64, 64)
    B[:, :, 20:40, 20:40] = torch.randn(2, 3, 20, 20).abs() + 1
    M = mask_from_saliency(B)
    assert M.shape == (2, 1, 64, 64)
    assert M.min() >= 0 and M.max() <= 1
    assert M[:, :, 30, 30].min() == 1.0  # salient centre saturates at 1 (the min(.,1) of Eq. 1)
    assert M[:, :, 2, 2].max() < 0.05  # far corner stays near 0
    # invariant to the scale of the gradient (normalised by its own std)
    assert torch.allclose(mask_from_saliency(B * 1000), M, atol=1e-5)


def test_eq2_sigma_zero_is_identity_and_mask_selects_blur():
    F_c = torch.randn(2, 8, 16, 16)
    M = torch.rand(2, 1, 64, 64)
    assert torch.equal(blur_skip(F_c, M, 0.0, 0.0), F_c)
    ones, zeros = torch.ones(2, 1, 64, 64), torch.zeros(2, 1, 64, 64)
    k = to_feature_sigma(8.0, 16)
    assert torch.allclose(blur_skip(F_c, ones, 8.0, 0.0), gaussian_blur(F_c, k), atol=1e-6)
    assert torch.equal(blur_skip(F_c, zeros, 8.0, 0.0), F_c)
    # Eq. 2 mixes two independent blurs: with M = 1/2 the result is their average
    half = torch.full((2, 1, 64, 64), 0.5)
    expect = 0.5 * gaussian_blur(F_c, k) + 0.5 * gaussian_blur(F_c, to_feature_sigma(4.0, 16))
    assert torch.allclose(blur_skip(F_c, half, 8.0, 4.0), expect, atol=1e-6)


def _run(tmp_path, name, steps, extra=()):
    from train.config import load_config
    from train.train import train

    cfg = load_config("train/configs/cusp_tiny.toml", [f"steps={steps}", *extra])
    return train(cfg, tmp_path / name, quiet=True)


def test_tiny_training_loss_falls(tmp_path):
    _run(tmp_path, "a", 60)
    rows = [json.loads(line) for line in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    assert last["G/rec"] < 0.7 * first["G/rec"], (first, last)
    assert last["G/cyc"] < 0.7 * first["G/cyc"], (first, last)
    assert (tmp_path / "a" / "samples").is_dir() and list((tmp_path / "a").glob("ckpt-*.safetensors"))


def test_resume_matches_uninterrupted_run(tmp_path):
    from faceage.checkpoint import load_checkpoint

    _run(tmp_path, "full", 12, ["ckpt_every=6"])
    _run(tmp_path, "split", 6, ["ckpt_every=6"])
    _run(tmp_path, "split", 12, ["ckpt_every=6"])  # resumes from step 6
    a, _ = load_checkpoint(tmp_path / "full" / "ckpt-00000012.safetensors")
    b, _ = load_checkpoint(tmp_path / "split" / "ckpt-00000012.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_init_weights_starts_a_new_run_from_exported_weights(tmp_path):
    """``init_weights`` loads an export into T and T_ema; with lr 0 the run's step-1 checkpoint equals it."""
    from faceage.checkpoint import load_checkpoint
    from train.export import export

    _run(tmp_path, "a", 4)
    export(tmp_path / "a", tmp_path / "g.safetensors")
    exported, _ = load_checkpoint(tmp_path / "g.safetensors")
    _run(tmp_path, "b", 1, [f"init_weights='{tmp_path / 'g.safetensors'}'", "cusp.lr=0.0", "ckpt_every=1"])
    _run(tmp_path, "fresh", 1, ["cusp.lr=0.0", "ckpt_every=1"])
    b, _ = load_checkpoint(tmp_path / "b" / "ckpt-00000001.safetensors")
    fresh, _ = load_checkpoint(tmp_path / "fresh" / "ckpt-00000001.safetensors")
    for prefix in ("T", "T_ema"):
        for k, v in exported.items():
            assert torch.equal(b[f"{prefix}.{k}"], v), (prefix, k)
    assert any(not torch.equal(fresh[f"T.{k}"], v) for k, v in exported.items())
    # a run's checkpoint works too: its EMA generator is what starts the new run
    _run(
        tmp_path,
        "c",
        1,
        [f"init_weights='{tmp_path / 'a' / 'ckpt-00000004.safetensors'}'", "cusp.lr=0.0", "ckpt_every=1"],
    )
    c, _ = load_checkpoint(tmp_path / "c" / "ckpt-00000001.safetensors")
    assert all(torch.equal(c[f"T.{k}"], v) for k, v in exported.items())


def test_half_precision_export_loads_as_float32_and_edits_alike(tmp_path):
    """``export --half`` stores float16 (half the bytes); the editor loads it into float32 parameters and
    its edits match the float32 export's within a grey level."""
    from faceage.checkpoint import load_checkpoint
    from faceage.cusp.editor import CUSPEditor
    from train.export import export

    _run(tmp_path, "a", 2)
    export(tmp_path / "a", tmp_path / "f32.safetensors")
    info = export(tmp_path / "a", tmp_path / "f16.safetensors", half_precision=True)
    tensors, manifest = load_checkpoint(tmp_path / "f16.safetensors")
    assert info["stored_dtype"] == manifest["stored_dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in tensors.values() if v.is_floating_point())
    assert (tmp_path / "f16.safetensors").stat().st_size < 0.6 * (tmp_path / "f32.safetensors").stat().st_size
    e32, e16 = CUSPEditor.load(tmp_path / "f32.safetensors"), CUSPEditor.load(tmp_path / "f16.safetensors")
    assert all(p.dtype == torch.float32 for p in e16.T.parameters())
    x = torch.rand(1, 3, e32.resolution, e32.resolution) * 2 - 1
    a, b = (e._decode([e.prepare(x)], 60, 8.0, 4.5)[0] for e in (e32, e16))
    assert (a - b).abs().max() * 127.5 < 1.0


def test_init_weights_of_another_network_is_a_clear_error(tmp_path):
    from train.export import export

    _run(tmp_path, "a", 2)
    export(tmp_path / "a", tmp_path / "g.safetensors")
    with pytest.raises(ValueError, match="does not fit this config's network"):
        _run(tmp_path, "b", 1, [f"init_weights='{tmp_path / 'g.safetensors'}'", "net.channel_max=16"])
    with pytest.raises(ValueError, match="amgan-generator weights, not a cusp generator"):
        _run(tmp_path, "c", 1, ["init_weights='assets/amgan_utkface128.safetensors'"])
