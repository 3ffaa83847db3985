"""AMGAN training: weak sign labels, batched maps, a tiny run whose losses move, bit-identical resume, export."""

from pathlib import Path

import numpy as np
import pytest
import torch

from faceage.amgan.editor import net_config
from faceage.amgan.maps import SIGNS, build_aging_map, patch_location
from faceage.amgan.model import AMGANGenerator
from faceage.checkpoint import load_checkpoint
from faceage.errors import BadParameterError
from faceage.face.align import template_points
from train.amgan.maps import MapBasis, crop_batch, patch_centres, sample_targets
from train.amgan.sign_scores import (
    IMAGE_WEIGHT,
    SignCalibration,
    blend_with_age,
    compute_labels,
    masked_measures,
    template_zone_masks,
    zone_measures,
)

REPO = Path(__file__).resolve().parents[1]
TINY = "train/configs/amgan_tiny.toml"


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: one thread avoids oversubscription (10x slower when contended)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------
# Weak sign labels


def _flat_faces(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    skin = torch.tensor([0.55, 0.25, 0.1]).view(1, 3, 1, 1) + 0.05 * torch.rand(n, 1, 1, 1, generator=g)
    return (skin + 0.01 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1).expand(n, 3, size, size).clone()


def _draw_lines(img: torch.Tensor, zone: torch.Tensor, spacing: int = 4, depth: float = 0.5) -> torch.Tensor:
    """Dark horizontal 1-px lines every ``spacing`` rows, inside ``zone`` only."""
    out = img.clone()
    rows = torch.zeros_like(zone)
    rows[::spacing] = 1
    out -= depth * (rows * zone)[None]
    return out.clamp(-1, 1)


def test_zone_with_drawn_lines_scores_higher_than_flat():
    size = 64
    zones = template_zone_masks(size)
    faces = _flat_faces(6, size)
    fh = SIGNS.index("forehead")
    lined = torch.stack([_draw_lines(f, zones[fh]) for f in faces[:3]])
    raw = zone_measures(torch.cat([lined, faces[3:]]), zones)
    assert raw[:3, fh].min() > 3 * raw[3:, fh].max(), raw[:, fh]
    # the lines are only in the forehead: the under-eye zones do not see them
    ue = SIGNS.index("under_eye_right")
    assert raw[:3, ue].max() < raw[:3, fh].min()
    # and after calibration + blending, at equal age, the lined foreheads get the higher scores
    scores, _, _ = compute_labels(torch.cat([lined, faces[3:]]), torch.full((6,), 40.0))
    assert scores[:3, fh].min() > scores[3:, fh].max()


def test_achromatic_ridge_energy_counts_grey_lines_and_not_single_channel_marks():
    """ridge_energy(achromatic=True): a grey line (R, G, B lowered alike) scores as in luminance; a line
    drawn in the G channel alone (magenta on skin), with the same luminance drop, scores about 0."""
    size = 64
    zones = template_zone_masks(size)
    fh = SIGNS.index("forehead")
    face = _flat_faces(1, size)
    lines = torch.zeros(size, size)
    lines[::4] = 1
    lines = lines * zones[fh]
    grey = (face - 0.3 * lines).clamp(-1, 1)
    magenta = face.clone()
    magenta[:, 1] -= 0.3 / 0.587 * lines  # the same luma drop as the grey line, all in G
    luma_grey, luma_mag = zone_measures(grey, zones)[0, fh], zone_measures(magenta, zones)[0, fh]
    achro_grey = zone_measures(grey, zones, achromatic=True)[0, fh]
    achro_mag = zone_measures(magenta, zones, achromatic=True)[0, fh]
    assert luma_mag == pytest.approx(float(luma_grey), rel=0.02)  # luminance cannot tell them apart
    assert achro_grey == pytest.approx(float(luma_grey), rel=0.1)  # (the faces' per-channel noise differs)
    assert achro_mag < 0.1 * achro_grey


def test_achromatic_judge_calibrates_on_its_own_measure_and_keeps_the_labels():
    """The items' calibration (the sign and edit terms' judge) is the achromatic measure's CDF over the same
    faces; the labels stay the luminance measure's. The removed ``judge`` option reads only as "achromatic"."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainConfig
    from train.batches import SyntheticFaces

    base = SyntheticFaces(n=16, size=64, seed=0)
    ds = with_sign_labels(base)
    images = torch.stack([base[i][0] for i in range(len(base))])
    ages = torch.tensor([float(base[i][1]) for i in range(len(base))])
    scores, _, luma_cal = compute_labels(images, ages)
    assert torch.equal(ds.scores, scores.float())
    raw = zone_measures(images, template_zone_masks(64), achromatic=True)
    torch.testing.assert_close(ds.calibration.knots, SignCalibration.fit(raw).knots)
    assert not torch.equal(ds.calibration.knots, luma_cal.knots)
    assert AMGANTrainConfig.from_dict({"judge": "achromatic"}) == AMGANTrainConfig()
    with pytest.raises(ValueError, match="judge='luma' was removed"):
        AMGANTrainConfig.from_dict({"judge": "luma"})


def test_shipped_manifest_parses_with_its_removed_options_at_their_defaults():
    """The shipped file's network and [amgan] configs load: the options it holds that were removed since
    (d_map_layer, context, lambda_colour, ...) are at the values that mean what the code now does."""
    from faceage.amgan.editor import net_config
    from train.amgan.trainer import AMGANTrainConfig

    manifest = load_checkpoint(REPO / "assets/amgan_utkface128.safetensors")[1]
    net = net_config(manifest["config"])
    assert net.tie_map_channels and (net.g_base, net.d_layers) == (16, 4)
    t = AMGANTrainConfig.from_dict(manifest["amgan_train"])
    assert (t.lr_g, t.lambda_local, t.lambda_shift, t.shift_margin) == (8.6e-5, 1000, 10, 0)
    with pytest.raises(ValueError, match="unknown \\[amgan\\] keys"):
        AMGANTrainConfig.from_dict({"lambda_colur": 1.0})
    # the committed recipe is the shipped file's (but for init_weights, the file it continued from)
    from train.config import TrainConfig, load_config

    recipe = load_config(REPO / "train/configs/amgan_utkface128.toml")
    assert recipe.amgan == t and net_config(recipe.to_dict()["net"]) == net
    shipped = manifest["train_config"]
    same = [k for k in recipe.to_dict() if k in shipped and k not in ("amgan", "init_weights", "net")]
    assert {"steps", "batch", "ema_half_life_images", "data"} <= set(same)
    assert {k: recipe.to_dict()[k] for k in same} == {k: shipped[k] for k in same}
    assert TrainConfig.from_dict(shipped, saved=True).net == recipe.net


def test_calibration_is_a_monotone_cdf_and_blend_is_documented():
    m = torch.rand(500, 3) * torch.tensor([1.0, 10.0, 0.1])
    cal = SignCalibration.fit(m)
    c = cal.cdf(m)
    assert c.min() >= 0 and c.max() <= 1
    assert abs(float(c.mean()) - 0.5) < 0.02  # calibrated: uniform over the set it was fitted on
    order = m[:, 1].argsort()
    assert (c[order, 1].diff() >= -1e-6).all()
    b = blend_with_age(torch.ones(2, 3), torch.tensor([0.0, 100.0]))
    assert torch.allclose(b[0], torch.full((3,), IMAGE_WEIGHT))
    assert torch.allclose(b[1], torch.ones(3))


def test_bad_inputs_to_sign_scores_raise_clearly():
    with pytest.raises(BadParameterError, match=r"\[N, 3, H, W\]"):
        zone_measures(torch.zeros(2, 1, 64, 64), template_zone_masks(64))
    with pytest.raises(BadParameterError, match="zones"):
        zone_measures(torch.zeros(2, 3, 64, 64), template_zone_masks(32))
    with pytest.raises(BadParameterError, match="image weight"):
        blend_with_age(torch.zeros(1, 3), torch.zeros(1), weight=1.5)


# ----------------------------------------------------------------------------------------------
# Batched maps and patches


def test_map_basis_equals_build_aging_map():
    size = 64
    basis = MapBasis(size)
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(3, len(SIGNS), generator=g)
    ages = torch.tensor([5.0, 40.0, 85.0])
    batch = basis.maps(ages / 100.0, scores)
    pts = template_points(size)
    for i in range(3):
        ref = build_aging_map(pts, size, dict(zip(SIGNS, scores[i].tolist())), float(ages[i]))
        assert torch.allclose(batch[i], ref, atol=1e-5)


def test_patch_centres_and_crops_agree_with_aging_map_helpers():
    corners = torch.tensor([[0, 0], [10, 30], [32, 32]])
    xy = patch_centres(corners, 32, 64)
    for (top, left), (x, y) in zip(corners.tolist(), xy.tolist()):
        ex, ey = patch_location(top, left, 32, 64, 64)
        assert abs(x - ex) < 1e-6 and abs(y - ey) < 1e-6
    t = torch.arange(3 * 2 * 64 * 64, dtype=torch.float32).view(3, 2, 64, 64)
    crops = crop_batch(t, corners, 32)
    assert torch.equal(crops[1], t[1, :, 10:42, 30:62])


def test_sampled_targets_stay_in_range_and_include_age_only_maps():
    a, s = sample_targets(torch.Generator().manual_seed(0), 400, (0.0, 90.0), 0.5, 0.3)
    assert a.min() >= 0 and a.max() <= 0.9 and s.min() >= 0 and s.max() <= 1
    uniform = (s == a[:, None]).all(1).float().mean()
    assert 0.2 < uniform < 0.4
    assert (s.std(1) > 0.05).float().mean() > 0.5  # the rest have signs that differ from each other


# ----------------------------------------------------------------------------------------------
# Training


def _cfg(steps: int, *extra):
    from train.config import load_config

    return load_config(REPO / TINY, [f"steps={steps}", *extra])


def test_amgan_trainer_refuses_flips():
    from train.amgan.trainer import AMGANTrainer

    with pytest.raises(ValueError, match="augment_flip"):
        AMGANTrainer(_cfg(1, "augment_flip=true"), torch.device("cpu"))


def test_attention_bias_init_starts_the_mask_low_in_G_and_its_ema():
    from train.amgan.trainer import AMGANTrainer

    tr = AMGANTrainer(_cfg(1, "amgan.attention_bias_init=-3.0"), torch.device("cpu"))
    for G in (tr.G, tr.G_ema):
        assert torch.all(G.attention_head.bias == -3.0)
    x = torch.zeros(1, 3, 32, 32)
    m = torch.full((1, 2, 32, 32), 0.5)
    a = tr.G(x, m, torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))[1]
    assert float(a.detach().mean()) < 0.2  # sigmoid(-3) = 0.05 plus the head's small weights


def test_tiny_training_run_losses_move_the_right_way():
    """Against their start: D's aging-map and location regressions fall, the cycle loss falls, and the
    critic ranks real patches above fakes (E[D(fake)] - E[D(real)] < 0)."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    cfg = _cfg(60, "amgan.lr_d=0.002", "amgan.lr_decay=false")
    tr = AMGANTrainer(cfg, torch.device("cpu"))
    ds = with_sign_labels(SyntheticFaces(n=32, size=64, seed=0))
    hist = []
    for step in range(cfg.steps):
        hist.append(tr.train_step(*get_batch(ds, step, cfg.batch, cfg.seed, False)))

    def mean(key, sl=slice(None)):
        return float(np.mean([h[key] for h in hist[sl]]))

    first, last = slice(0, 10), slice(-20, None)
    assert mean("D/age", last) < 0.6 * mean("D/age", first), (mean("D/age", first), mean("D/age", last))
    assert mean("D/loc", last) < 0.95 * mean("D/loc", first), (mean("D/loc", first), mean("D/loc", last))
    assert mean("G/cyc", last) < 0.7 * mean("G/cyc", first), (mean("G/cyc", first), mean("G/cyc", last))
    assert mean("D/wgan") < -0.01, mean("D/wgan")
    assert mean("D/wgan", first) < -0.02
    assert all(np.isfinite(h["G/total"]) for h in hist)


def test_resume_matches_uninterrupted_run(tmp_path):
    from train.train import train

    train(_cfg(6, "ckpt_every=3", "sample_every=1000"), tmp_path / "a", quiet=True)
    # the LR decay depends on ``steps``, so the interrupted run keeps steps=6 and stops on time after step 1
    train(_cfg(6, "ckpt_every=3", "sample_every=1000", "max_minutes=1e-9"), tmp_path / "b", quiet=True)
    assert [p.name for p in sorted((tmp_path / "b").glob("ckpt-*"))] == ["ckpt-00000001.safetensors"]
    train(_cfg(6, "ckpt_every=3", "sample_every=1000"), tmp_path / "b", quiet=True)  # resumes at 1
    ta, ma = load_checkpoint(tmp_path / "a" / "ckpt-00000006.safetensors")
    tb, mb = load_checkpoint(tmp_path / "b" / "ckpt-00000006.safetensors")
    assert ma["step"] == mb["step"] == 6
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_export_writes_the_ema_generator_with_its_config(tmp_path):
    from train.export import export
    from train.train import train

    train(_cfg(2, "ckpt_every=2", "sample_every=2"), tmp_path / "r", quiet=True)
    assert (tmp_path / "r" / "samples" / "00000002.png").is_file()
    info = export(tmp_path / "r", tmp_path / "g.safetensors", hardware="test", minutes=0.1)
    tensors, manifest = load_checkpoint(tmp_path / "g.safetensors")
    assert manifest["kind"] == "amgan-generator" and manifest["resolution"] == 64 and manifest["patch"] == 32
    assert manifest["hardware"] == "test" and info["step"] == 2
    G = AMGANGenerator(net_config(manifest["config"]))
    G.load_state_dict(tensors)  # strict: exactly G's keys, no D, no optimiser
    run_ckpt, _ = load_checkpoint(tmp_path / "r" / "ckpt-00000002.safetensors")
    assert torch.equal(tensors["color_head.weight"], run_ckpt["G_ema.color_head.weight"])


# ----------------------------------------------------------------------------------------------
# Data-parallel (torch.distributed, gloo): 2 processes follow 1 process on the same global batch

DDP_STEPS = 2
DDP_OVERRIDES = ["batch=4", "log_every=1", "ckpt_every=2", "sample_every=1000"]


def _ddp_worker(rank: int, world: int, port: int, run: str) -> None:
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import torch.distributed as tdist

    from train.amgan.trainer import AMGANTrainer
    from train.train import train

    step_once = AMGANTrainer.train_step

    def step_then_compare(self, *batch):
        out = step_once(self, *batch)
        mine = torch.cat([p.detach().reshape(-1) for m in (self.G, self.D, self.G_ema) for p in m.parameters()])
        rank0 = mine.clone()
        tdist.broadcast(rank0, src=0)
        assert torch.equal(mine, rank0), f"rank {rank}: weights differ from rank 0 after step {self.step}"
        return out

    AMGANTrainer.train_step = step_then_compare
    train(_cfg(DDP_STEPS, *DDP_OVERRIDES), Path(run), quiet=True)


def test_two_processes_match_one_process(tmp_path, free_port):
    import torch.multiprocessing as mp
    from test_distributed import _assert_same_training_state

    from train.train import train

    train(_cfg(DDP_STEPS, *DDP_OVERRIDES), tmp_path / "one", quiet=True)
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path / "two")), nprocs=2)
    name = f"ckpt-{DDP_STEPS:08d}.safetensors"
    _assert_same_training_state(tmp_path / "one" / name, tmp_path / "two" / name)


def test_sign_edits_move_one_sign_and_the_outside_mask_spares_its_zone():
    """train.amgan.maps.sample_sign_edits / outside_edit, the inputs of amgan.lambda_local."""
    from train.amgan.maps import MapBasis, outside_edit, sample_sign_edits
    from train.amgan.sign_scores import template_zone_masks

    s = torch.rand(200, len(SIGNS))
    e = sample_sign_edits(torch.Generator().manual_seed(0), s)
    moved = (e != s).sum(1)
    assert torch.equal(moved, torch.ones(200, dtype=torch.long))
    assert (e - s).abs().sum(1).min() >= 0.125 - 1e-6 and e.min() >= 0 and e.max() <= 1
    assert len((e != s).float().argmax(1).unique()) == len(SIGNS)  # every sign gets edited

    basis, z = MapBasis(64), SIGNS.index("forehead")
    a = torch.tensor([0.3])
    before = basis.maps(a, torch.full((1, len(SIGNS)), 0.3))
    after_s = torch.full((1, len(SIGNS)), 0.3)
    after_s[0, z] = 0.9
    out = outside_edit(before, basis.maps(a, after_s), margin=3)
    zone = template_zone_masks(64)[z].bool()
    assert out.shape == (1, 1, 64, 64) and set(out.unique().tolist()) == {0.0, 1.0}
    assert out[0, 0][zone].max() == 0  # the zone itself is never charged
    assert out[0, 0, 50:].min() == 1  # the chin is far from the forehead


def test_zone_leak_loss_charges_change_outside_only():
    from train.amgan.losses import zone_leak_loss

    base = torch.rand(2, 3, 16, 16)
    outside = torch.ones(2, 1, 16, 16)
    outside[..., 4:8, 4:8] = 0
    inside_edit = base.clone()
    inside_edit[..., 4:8, 4:8] += 0.5
    leaking = base + 0.1
    assert zone_leak_loss(base, base, outside) == 0 and zone_leak_loss(inside_edit, base, outside) == 0
    assert zone_leak_loss(leaking, base, outside) == pytest.approx(0.1, abs=1e-6)


def _fit_one_term(tr, b: dict, term: str, steps: int, lr: float) -> list[float]:
    """Adam on G alone against one of its loss terms on the fixed batch ``b``; the term's values."""
    from train.ema import requires_grad

    requires_grad(tr.G, True)  # train_step leaves G frozen after its D step
    opt = torch.optim.Adam(tr.G.parameters(), lr=lr)
    hist = []
    for _ in range(steps):
        loss = tr.generator_terms(b)[0][term]
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(loss.item())
    return hist


def test_locality_term_pairs_maps_that_agree_outside_and_its_gradient_cuts_the_leak():
    """amgan.lambda_local (ours, default 0): prepare() adds an edited target map that differs from the
    target only where out_p is 0, and the term's gradient makes G keep a sign's effect in its zone."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    x, age, signs = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([20.0, 60.0]), torch.rand(2, len(SIGNS))
    tr = AMGANTrainer(_cfg(2), torch.device("cpu"))
    assert "Ae_g" not in tr.prepare(x, age, signs) and tr.train_step(x, age, signs)["G/local"] == 0

    tr = AMGANTrainer(_cfg(2, "amgan.lambda_local=10.0"), torch.device("cpu"))
    assert tr.generator_weights()["local"] == 10.0 and tr.train_step(x, age, signs)["G/local"] > 0
    ds = with_sign_labels(SyntheticFaces(n=32, size=64, seed=0))
    b = tr.prepare(*get_batch(ds, 0, 8, 0, False))
    agree = (b["Ae_g"] - b["At_p"]).abs().sum(1, keepdim=True) < 1e-6
    assert b["out_p"].shape == (8, 1, 32, 32) and torch.all(agree[b["out_p"] == 1])
    assert 0 < float(b["out_p"].mean()) < 1
    with torch.no_grad():  # a G whose output leans on the map (a fresh one barely reads it)
        for name, p in tr.G.named_parameters():
            if ".shared." in name or ".gamma." in name or ".beta." in name:
                p.mul_(4.0)
    leak = _fit_one_term(tr, b, "local", steps=25, lr=1e-3)
    assert leak[-1] < 0.3 * leak[0], leak


def test_soft_cdf_and_masked_measures_agree_with_the_label_code():
    """The sign term's pieces are the weak labels' own code, made differentiable."""
    faces = torch.rand(6, 3, 64, 64) * 2 - 1
    zones = template_zone_masks(64)
    raw = zone_measures(faces, zones)
    torch.testing.assert_close(masked_measures(faces, zones[None].expand(6, -1, -1, -1)), raw)
    cal = SignCalibration.fit(torch.rand(300, len(SIGNS)))
    m = (torch.rand(40, len(SIGNS)) * 1.2 - 0.1).requires_grad_()
    soft = cal.soft_cdf(m)
    torch.testing.assert_close(soft, cal.cdf(m.detach()), atol=1e-5, rtol=0)
    soft.sum().backward()
    inside = (m > cal.knots[:, 0]) & (m < cal.knots[:, -1])
    assert torch.all(m.grad[inside] > 0) and torch.all(m.grad[~inside] == 0)


def _textured_trainer(option: str):
    """A trainer with a texture term on (``option``), whole-face patches, that refuses to train without the
    labels' calibration; then given it. -> (trainer, its first batch from prepare(), the raw batch)."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    ds = with_sign_labels(SyntheticFaces(n=32, size=64, seed=0))
    tr = AMGANTrainer(_cfg(2, option, "amgan.patch=64"), torch.device("cpu"))
    x, age, signs = get_batch(ds, 0, 8, 0, False)
    with pytest.raises(ValueError, match="calibration"):
        tr.train_step(x, age, signs)
    tr.calibration = ds.calibration
    tr.rng.manual_seed(tr.cfg.seed + 1)
    b = tr.prepare(x, age, signs)
    tr.rng.manual_seed(tr.cfg.seed + 1)  # so that tr._draw(8) draws b's targets again
    return tr, b, (x, age, signs)


def test_sign_term_targets_the_texture_part_and_its_gradient_follows_it():
    """amgan.lambda_sign (ours, default 0): the target's texture part per zone, zones the patch covers
    enough, an error without the labels' calibration, and G learning to meet it on a fixed batch."""
    tr, b, _ = _textured_trainer("amgan.lambda_sign=1.0")
    assert b["Z_p"].shape == (8, len(SIGNS), 64, 64) and torch.all(b["Z_valid"] == 1)  # whole-face patches
    a_t, s_t = tr._draw(8)[:2]
    torch.testing.assert_close(blend_with_age(b["U_t"], a_t * 100), s_t.clamp(0, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(b["U_t"], ((s_t - 0.5 * a_t[:, None]) / 0.5).clamp(0, 1))

    hist = _fit_one_term(tr, b, "sign", steps=30, lr=2e-3)
    assert np.mean(hist[-5:]) < 0.75 * hist[0], hist


def test_edit_term_targets_the_edited_signs_step_and_its_gradient_follows_it():
    """amgan.lambda_edit (ours, default 0): the edit pair is drawn without lambda_local, k_e / dU_e are the
    edited sign and the change of its texture part, and G learns to move that zone's texture by it."""
    tr, b, batch = _textured_trainer("amgan.lambda_edit=1.0")
    assert "U_t" not in b and "Ae_g" in b and torch.all(b["Z_valid"] == 1)
    draw = tr._draw(8)
    a_t, s_t, s_e = draw.a_t, draw.s_t, draw.s_e
    moved = (s_e - s_t).abs() > 0
    assert torch.all(moved.sum(1) == 1) and torch.equal(moved.float().argmax(1), b["k_e"])

    def part(s):
        return ((s - 0.5 * a_t[:, None]) / 0.5).clamp(0, 1)

    rows = torch.arange(8)
    torch.testing.assert_close(b["dU_e"], part(s_e)[rows, b["k_e"]] - part(s_t)[rows, b["k_e"]])
    assert tr.train_step(*batch)["G/edit"] > 0

    hist = _fit_one_term(tr, b, "edit", steps=30, lr=2e-3)
    assert np.mean(hist[-5:]) < 0.75 * hist[0], hist


def test_tone_term_charges_a_blotch_not_fine_lines():
    """amgan.edit_tone_loss (ours): a uniform change of a zone costs its size; lines one pixel apart of the
    same amplitude cost almost nothing; prepare() gives the edited sign without lambda_edit's targets."""
    from train.amgan.losses import edit_tone_loss
    from train.amgan.trainer import AMGANTrainer

    zone = torch.zeros(1, 1, 32, 32)
    zone[..., 8:24, 8:24] = 1
    base = torch.zeros(1, 3, 32, 32)
    blotch = base - 0.4 * zone
    lines = base + 0.4 * zone * (torch.arange(32) % 2 * 2 - 1).float()[:, None]
    assert edit_tone_loss(blotch, base, zone) > 0.3
    assert edit_tone_loss(lines, base, zone) < 0.15 * edit_tone_loss(blotch, base, zone)  # 1/7 left by the box

    x, age, signs = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([20.0, 60.0]), torch.rand(2, len(SIGNS))
    tr = AMGANTrainer(_cfg(2, "amgan.lambda_tone=1.0"), torch.device("cpu"))
    b = tr.prepare(x, age, signs)
    assert "k_e" in b and "Ae_g" in b and "dU_e" not in b and "U_t" not in b
    assert tr.train_step(x, age, signs)["G/tone"] > 0  # no calibration needed


def test_cover_table_and_covered_edit_weights():
    """train.amgan.maps.cover_table / covered_edit_weights, and sample_sign_edits drawing by weight."""
    from train.amgan.maps import cover_table, covered_edit_weights, crop_batch, sample_patches, sample_sign_edits
    from train.amgan.sign_scores import template_zone_masks

    zones = template_zone_masks(64)
    table = cover_table(zones, 32)
    assert table.shape == (len(SIGNS), 33, 33)
    c = sample_patches(torch.Generator().manual_seed(0), 50, 64, 32)
    crops = crop_batch(zones[None].expand(50, -1, -1, -1), c, 32)
    cover = crops.flatten(2).sum(2) / zones.flatten(1).sum(1)
    torch.testing.assert_close(table[:, c[:, 0], c[:, 1]].T, cover, atol=1e-5, rtol=0)

    w = covered_edit_weights(table, c, 0.5)
    assert torch.equal(w > 0, cover >= 0.5)
    f = SIGNS.index("forehead")  # rarely covered by a 32-px patch: a larger weight where it is covered
    rare = (table[f] >= 0.5).float().mean()
    assert 0 < rare < (table[SIGNS.index("upper_lip")] >= 0.5).float().mean()
    if (w[:, f] > 0).any():
        torch.testing.assert_close(w[w[:, f] > 0, f], torch.full_like(w[w[:, f] > 0, f], 1 / rare.item()))

    s = torch.rand(4, len(SIGNS))
    only = torch.zeros(4, len(SIGNS))
    only[0, 2] = only[1, 5] = only[2, 1] = 1.0  # row 3 all zero: any sign
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        k = (sample_sign_edits(g, s, only) != s).float().argmax(1)
        assert k[0] == 2 and k[1] == 5 and k[2] == 1
    assert len({int((sample_sign_edits(g, s, only) != s).float().argmax(1)[3]) for _ in range(200)}) == len(SIGNS)


def test_edits_are_drawn_where_the_patch_shows_them():
    """Every edited sign's zone is covered enough by its patch (covered_edit_weights), also on 32-px patches
    of 64-px faces, where a uniform draw would often pick a zone the patch does not show."""
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    tr = AMGANTrainer(_cfg(2, "amgan.lambda_tone=1.0", "batch=64"), torch.device("cpu"))
    b = tr.prepare(*get_batch(SyntheticFaces(n=64, size=64, seed=0), 0, 64, 0, False)[:2], torch.rand(64, len(SIGNS)))
    seen = b["Z_valid"].gather(1, b["k_e"][:, None])[:, 0]
    assert seen.min() == 1


def test_per_sign_terms_wait_for_their_step():
    """amgan.per_sign_from (ours, default 0): before that step G's loss has no per-sign term and no edit pair
    or zone patches are drawn; from it on, all four are on with their weights."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import PER_SIGN_TERMS, AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    ds = with_sign_labels(SyntheticFaces(n=16, size=64, seed=0))
    tr = AMGANTrainer(
        _cfg(
            4,
            "amgan.per_sign_from=2",
            "amgan.patch=64",
            "amgan.lambda_local=3.0",
            "amgan.lambda_sign=1.0",
            "amgan.lambda_edit=2.0",
            "amgan.lambda_tone=4.0",
        ),
        torch.device("cpu"),
    )
    tr.calibration = ds.calibration
    x, age, signs = get_batch(ds, 0, 4, 0, False)
    for step in range(4):
        on = step >= 2
        w = tr.generator_weights()
        assert [w[k] for k in PER_SIGN_TERMS] == ([3.0, 1.0, 2.0, 4.0] if on else [0.0] * 4)
        b = tr.prepare(x, age, signs)
        assert ("Ae_g" in b) == on and ("Z_p" in b) == on and ("U_t" in b) == on
        out = tr.train_step(x, age, signs)
        assert (out["G/edit"] != 0) == on and (out["G/sign"] != 0) == on


def test_trainer_warns_once_when_g_becomes_the_identity(monkeypatch, caplog):
    """With A saturated at 1 (G copies its input) for IDENTITY_STEPS steps the trainer logs one warning;
    a G that paints (A at its start value, 0.12) logs none."""
    import train.amgan.trainer as at
    from train.amgan.data import with_sign_labels
    from train.batches import SyntheticFaces, get_batch

    monkeypatch.setattr(at, "IDENTITY_STEPS", 2)
    batch = get_batch(with_sign_labels(SyntheticFaces(n=4, size=64, seed=0)), 0, 4, 0, False)
    for bias, warnings in ((-2.0, 0), (100.0, 1)):
        tr = at.AMGANTrainer(_cfg(4, f"amgan.attention_bias_init={bias}"), torch.device("cpu"))
        caplog.clear()
        with caplog.at_level("WARNING", logger="faceage.train"):
            for _ in range(4):
                tr.train_step(*batch)
        assert sum("identity" in r.getMessage() for r in caplog.records) == warnings


def test_shift_corners_move_within_the_limit_and_stay_in_the_image():
    from train.amgan.maps import sample_patches, shift_corners

    g = torch.Generator().manual_seed(0)
    corners = sample_patches(g, 2000, 128, 64)
    moved = shift_corners(g, corners, 128, 64, 16)
    assert moved.min() >= 0 and moved.max() <= 64
    assert (moved - corners).abs().max() <= 16
    assert len(torch.unique(moved - corners)) > 20  # moves of many sizes, not one


def test_shift_term_pairs_two_crops_of_one_face_and_its_gradient_makes_g_agree():
    """amgan.lambda_shift (ours, default 0): prepare() adds a second crop whose pixels are the first's,
    moved by offset_q, and the term's gradient makes G's attention and colour agree where they overlap."""
    from train.amgan.data import with_sign_labels
    from train.amgan.trainer import AMGANTrainer
    from train.batches import SyntheticFaces, get_batch

    x, age, signs = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([20.0, 60.0]), torch.rand(2, len(SIGNS))
    tr = AMGANTrainer(_cfg(2), torch.device("cpu"))
    assert "I_q" not in tr.prepare(x, age, signs) and tr.train_step(x, age, signs)["G/shift"] == 0

    tr = AMGANTrainer(
        _cfg(2, "amgan.lambda_shift=5.0", "amgan.shift_max=6", "amgan.shift_margin=4"), torch.device("cpu")
    )
    assert tr.generator_weights()["shift"] == 5.0 and tr.train_step(x, age, signs)["G/shift"] > 0
    late = AMGANTrainer(_cfg(2, "amgan.lambda_shift=5.0", "amgan.shift_from=1"), torch.device("cpu"))
    assert late.generator_weights()["shift"] == 0 and "I_q" not in late.prepare(x, age, signs)
    assert late.train_step(x, age, signs)["G/shift"] == 0  # step 0; from step 1 on, the term is on
    assert late.generator_weights()["shift"] == 5.0 and late.train_step(x, age, signs)["G/shift"] > 0
    ds = with_sign_labels(SyntheticFaces(n=32, size=64, seed=0))
    b = tr.prepare(*get_batch(ds, 0, 8, 0, False))
    assert b["I_q"].shape == b["I_p"].shape and b["offset_q"].abs().max() <= 6
    for i, (dy, dx) in enumerate(b["offset_q"].tolist()):  # the same face pixels, moved
        P = b["I_p"].shape[-1]
        r, c = slice(max(dy, 0), P + min(dy, 0)), slice(max(dx, 0), P + min(dx, 0))
        rq, cq = slice(max(-dy, 0), P + min(-dy, 0)), slice(max(-dx, 0), P + min(-dx, 0))
        assert torch.equal(b["I_p"][i, :, r, c], b["I_q"][i, :, rq, cq])
        assert torch.equal(b["At_p"][i, :, r, c], b["At_q"][i, :, rq, cq])
    gap = _fit_one_term(tr, b, "shift", steps=25, lr=1e-3)
    assert gap[-1] < 0.5 * gap[0], gap


def test_shift_consistency_loss_is_the_mean_gap_over_the_shared_inner_pixels():
    """The batched loss against a pixel-by-pixel count: a pixel of crop a at (i, j) is b's (i - dy, j - dx),
    both at least ``margin`` from their crop's border; a pair that shares no such pixel adds nothing."""
    from train.amgan.losses import shift_consistency_loss

    g = torch.Generator().manual_seed(0)
    P, margin = 12, 2
    a, b = torch.rand(4, 2, P, P, generator=g), torch.rand(4, 2, P, P, generator=g)
    offset = torch.tensor([[0, 0], [3, -2], [-5, 4], [9, 0]])  # the last shares no inner pixel
    total, count = 0.0, 0
    for n, (dy, dx) in enumerate(offset.tolist()):
        for i in range(margin, P - margin):
            for j in range(margin, P - margin):
                if margin <= i - dy < P - margin and margin <= j - dx < P - margin:
                    total += float((a[n, :, i, j] - b[n, :, i - dy, j - dx]).abs().sum())
                    count += a.shape[1]
    assert float(shift_consistency_loss(a, b, offset, margin)) == pytest.approx(total / count, rel=1e-5)
    assert float(shift_consistency_loss(a[3:], b[3:], offset[3:], margin)) == 0.0
