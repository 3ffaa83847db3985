"""AMGAN: aging-map zones, painted maps, location maps, G's attention, patch/tile consistency, losses."""

import numpy as np
import pytest
import torch

from faceage.amgan.editor import net_config
from faceage.amgan.maps import (
    MAP_CHANNELS,
    SIGN_CHANNEL,
    SIGNS,
    build_aging_map,
    crop_patch,
    face_region_mask,
    image_to_map,
    location_maps,
    map_to_image,
    patch_location,
    sign_zone_masks,
)
from faceage.amgan.model import AGE_GRID, AMGANConfig, AMGANDiscriminator, AMGANGenerator, generate_tiled
from faceage.data.ages import normalize_age
from faceage.errors import BadParameterError
from faceage.face.align import template_points
from train.amgan.losses import (
    age_loss,
    attention_loss,
    critic_loss,
    cycle_loss,
    generator_adv_loss,
    gradient_penalty,
    loc_loss,
)

SIZE = 64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The test machine is shared: one thread is faster than fighting for cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(g_base=8, g_max=16, n_down=2, n_bottleneck=1, spade_hidden=8, d_base=8, d_max=32, d_layers=3)


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


@pytest.fixture(scope="module")
def lm():
    return template_points(SIZE)


def test_zones_sit_where_the_signs_are(lm):
    zones = sign_zone_masks(lm, SIZE)
    face = face_region_mask(lm, SIZE)
    assert set(zones) == set(SIGNS)
    for sign, z in zones.items():
        assert z.sum() >= 4, sign
        assert not (z & ~face).any(), sign
    brow_top = lm[17:27, 1].min()
    fx, fy = _centroid(zones["forehead"])
    assert fy < brow_top and lm[17, 0] < fx < lm[26, 0]
    gx, gy = _centroid(zones["glabella"])
    assert abs(gx - lm[27, 0]) < 2 and gy < lm[36:48, 1].mean()
    # subject's right = image left (iBUG 36-41), subject's left = image right (42-47)
    for side, eye in (("right", lm[36:42]), ("left", lm[42:48])):
        x, y = _centroid(zones[f"under_eye_{side}"])
        assert y > eye[:, 1].max() and eye[:, 0].min() - 1 < x < eye[:, 0].max() + 1
    assert _centroid(zones["under_eye_right"])[0] < lm[27, 0] < _centroid(zones["under_eye_left"])[0]
    for base in ("nasolabial", "ptosis", "lip_corner"):
        assert _centroid(zones[f"{base}_right"])[0] < lm[30, 0] < _centroid(zones[f"{base}_left"])[0], base
    ux, uy = _centroid(zones["upper_lip"])
    assert lm[33, 1] < uy < lm[51, 1] + 1
    assert _centroid(zones["ptosis_right"])[1] > lm[48, 1]
    # zones of one channel are disjoint, the overlapping lip-corner zones have their own channel
    for a in SIGNS:
        for b in SIGNS:
            if a < b and SIGN_CHANNEL[a] == SIGN_CHANNEL[b]:
                assert not (zones[a] & zones[b]).any(), (a, b)
    assert (zones["lip_corner_right"] & (zones["nasolabial_right"] | zones["ptosis_right"])).sum() >= 4


def test_aging_map_values(lm):
    scores = {s: 0.05 * (i + 1) for i, s in enumerate(SIGNS)}
    m = build_aging_map(lm, SIZE, scores, age=40, blur_sigma=0)
    assert m.shape == (MAP_CHANNELS, SIZE, SIZE) and m.dtype == torch.float32
    zones, face = sign_zone_masks(lm, SIZE), face_region_mask(lm, SIZE)
    for s, z in zones.items():
        assert torch.allclose(m[SIGN_CHANNEL[s]][torch.from_numpy(z)], torch.tensor(scores[s]))
    rest = face & ~np.any([z for s, z in zones.items() if SIGN_CHANNEL[s] == 0], axis=0)
    assert torch.allclose(m[0][torch.from_numpy(rest)], torch.tensor(normalize_age(40.0)))
    assert (m[:, torch.from_numpy(~face)] == 0).all()
    blurred = build_aging_map(lm, SIZE, scores, age=40)
    assert 0 <= blurred.min() and blurred.max() <= 1 and not torch.equal(blurred, m)
    age_only = build_aging_map(lm, SIZE, {}, age=70, blur_sigma=0)
    assert sorted(age_only.unique().tolist()) == [0.0, pytest.approx(0.7)]


@pytest.mark.parametrize(
    "scores,msg",
    [
        ({"cheeks": 0.5}, "unknown clinical sign"),
        ({"forehead": 1.5}, "in \\[0, 1\\]"),
        ({"forehead": float("nan")}, "finite"),
        ({"forehead": "high"}, "number"),
    ],
)
def test_bad_scores_are_refused(lm, scores, msg):
    with pytest.raises(BadParameterError, match=msg):
        build_aging_map(lm, SIZE, scores, age=30)


def test_bad_landmarks_age_and_sigma_are_refused(lm):
    with pytest.raises(BadParameterError, match="68, 2"):
        build_aging_map(lm[:10], SIZE, {}, age=30)
    with pytest.raises(BadParameterError, match="age"):
        build_aging_map(lm, SIZE, {}, age=-1)
    with pytest.raises(BadParameterError, match="blur_sigma"):
        build_aging_map(lm, SIZE, {}, age=30, blur_sigma=float("inf"))


def test_map_round_trip_through_a_picture(lm):
    m = build_aging_map(lm, SIZE, {"forehead": 0.3, "lip_corner_left": 0.9}, age=55)
    pic = map_to_image(m)
    assert pic.dtype == np.uint8 and pic.shape == (SIZE, SIZE, 3) and (pic[..., 2] == 0).all()
    back = image_to_map(pic, channels=MAP_CHANNELS, size=SIZE)
    assert (back - m).abs().max() <= 0.5 / 255 + 1e-7
    assert torch.equal(image_to_map(map_to_image(back), size=SIZE), back)  # quantised maps are fixed points
    gray = map_to_image(m[:1])
    assert gray.shape == (SIZE, SIZE)
    assert (image_to_map(gray, channels=1) - m[:1]).abs().max() <= 0.5 / 255 + 1e-7


def test_malformed_painted_maps_are_refused():
    with pytest.raises(BadParameterError, match="face crop is 64x64"):
        image_to_map(np.zeros((32, 32, 3), np.uint8), size=64)
    with pytest.raises(BadParameterError, match="uint8"):
        image_to_map(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(BadParameterError, match="RGB"):
        image_to_map(np.zeros((64, 64), np.uint8), channels=2)
    with pytest.raises(BadParameterError, match="gray"):
        image_to_map(np.dstack([np.zeros((8, 8), np.uint8)] * 2 + [np.ones((8, 8), np.uint8)]), channels=1)
    with pytest.raises(BadParameterError, match="shape"):
        image_to_map(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(BadParameterError, match="\\[0, 1\\]"):
        map_to_image(torch.full((2, 8, 8), 1.5))


def test_location_maps():
    loc = location_maps(6, 9)
    assert loc.shape == (2, 6, 9)
    x, y = loc
    assert x[0, 0] == -1 and x[0, -1] == 1 and y[0, 0] == -1 and y[-1, 0] == 1
    assert (x.diff(dim=1) > 0).all() and (x.diff(dim=0) == 0).all()
    assert (y.diff(dim=0) > 0).all() and (y.diff(dim=1) == 0).all()
    big = location_maps(64, 64)
    p = crop_patch(big, 16, 32, 16)
    assert torch.allclose(torch.stack([p[0].mean(), p[1].mean()]), torch.tensor(patch_location(16, 32, 16, 64, 64)))
    with pytest.raises(BadParameterError, match="does not fit"):
        crop_patch(big, 60, 0, 16)
    with pytest.raises(ValueError, match="height"):
        location_maps(0, 8)


def _inputs(n, h, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, 3, h, h, generator=g) * 2 - 1
    am = torch.rand(n, MAP_CHANNELS, h, h, generator=g)
    loc = location_maps(h, h)[None].expand(n, 2, h, h)
    return img, am, loc[:, :1], loc[:, 1:]


def test_shapes_and_attention_one_keeps_the_input():
    torch.manual_seed(0)
    cfg = AMGANConfig(**TINY)
    G, D = AMGANGenerator(cfg), AMGANDiscriminator(cfg)
    img, am, xm, ym = _inputs(2, 32)
    out, a, c = G(img, am, xm, ym)
    assert out.shape == img.shape and a.shape == (2, 1, 32, 32) and c.shape == img.shape
    assert torch.allclose(out, a * img + (1 - a) * c)
    critic, xy, age = D(out)
    assert critic.shape[:2] == (2, 1) and xy.shape == (2, 2) and age.shape == (2, MAP_CHANNELS, AGE_GRID, AGE_GRID)
    with torch.no_grad():
        G.attention_head.bias.fill_(100.0)  # sigmoid(100) == 1 in float32
    out, a, _ = G(img, am, xm, ym)
    assert (a == 1).all() and torch.equal(out, img)
    with pytest.raises(ValueError, match="multiples of 4"):
        G(img[..., :30, :30], am[..., :30, :30], xm[..., :30, :30], ym[..., :30, :30])


def test_full_image_output_cropped_equals_the_patch_output():
    """Positional norm makes G translation-equivariant: exact away from the receptive-field margin."""
    h, top, left, size, margin = 128, 16, 32, 80, 28  # offsets are multiples of 2**n_down
    img, am, xm, ym = _inputs(1, h)
    crop = lambda t: crop_patch(t, top, left, size)  # noqa: E731
    torch.manual_seed(0)
    G = AMGANGenerator(AMGANConfig(**TINY)).eval()
    with torch.no_grad():
        full = G(img, am, xm, ym)[0]
        patch = G(crop(img), crop(am), crop(xm), crop(ym))[0]
    assert (crop(full) - patch)[..., margin:-margin, margin:-margin].abs().max().item() < 1e-5


def test_tiled_inference_matches_one_pass():
    img, am, xm, ym = _inputs(1, 128, seed=1)
    torch.manual_seed(0)
    G = AMGANGenerator(AMGANConfig(**{**TINY, "n_down": 1})).eval()  # receptive margin 14 px
    with torch.no_grad():
        one, one_att, _ = G(img, am, xm, ym)
        tiled, tiled_att = generate_tiled(G, img, am, tile=96, overlap=48, with_attention=True)
    assert (tiled - one).abs().max() < 1e-4  # overlap/4 >= margin
    assert tiled_att.shape == (1, 1, 128, 128) and (tiled_att - one_att).abs().max() < 1e-4
    torch.manual_seed(0)
    G = AMGANGenerator(AMGANConfig(**TINY)).eval()  # margin 28 px > overlap / 4: close, not exact
    with torch.no_grad():
        one = G(img, am, xm, ym)[0]
    err = (generate_tiled(G, img, am, tile=64, overlap=32) - one).abs()
    assert err.max() < 0.1 and err.mean() < 5e-3
    with pytest.raises(ValueError, match="multiples"):
        generate_tiled(G, img, am, tile=62, overlap=16)


def test_tied_map_channels_start_shared_and_can_part():
    """tie_map_channels: at init G reads every map channel with one kernel (swapping the channels
    changes nothing); the per-channel residuals train, and then the channels differ. A free G differs."""
    img, am, xm, ym = _inputs(2, 32)
    torch.manual_seed(0)
    free = AMGANGenerator(AMGANConfig(**TINY))
    torch.manual_seed(0)
    G = AMGANGenerator(AMGANConfig(**TINY, tie_map_channels=True))
    assert "bottleneck.0.norm0.shared.0.tied" in G.state_dict()
    assert not any(k.endswith(".tied") for k in free.state_dict())
    with torch.no_grad():
        assert (free(img, am, xm, ym)[0] - free(img, am.flip(1), xm, ym)[0]).abs().max() > 1e-3
        assert (G(img, am, xm, ym)[0] - G(img, am.flip(1), xm, ym)[0]).abs().max() < 1e-5
    conv = G.bottleneck[0].norm0.shared[0]
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt.zero_grad()
    G(img, am, xm, ym)[0][:, :, :, :16].mean().backward()  # channels 0 and 1 hold different values
    opt.step()
    assert conv.tied.grad.abs().sum() > 0
    assert (conv.weight[:, 0] - conv.weight[:, 1]).abs().max() > 1e-4  # the residuals part
    with torch.no_grad():
        assert (G(img, am, xm, ym)[0] - G(img, am.flip(1), xm, ym)[0]).abs().max() > 1e-4
    again = AMGANGenerator(net_config(G.cfg.to_dict()))
    again.load_state_dict(G.state_dict())
    with torch.no_grad():
        assert torch.equal(again(img, am, xm, ym)[0], G(img, am, xm, ym)[0])
    # an untied G's weights load into a tied G: unchanged where all map channels agree, tied elsewhere
    G.load_state_dict(free.state_dict())
    same = am[:, :1].expand_as(am)
    with torch.no_grad():
        assert (G(img, same, xm, ym)[0] - free(img, same, xm, ym)[0]).abs().max() < 1e-5
        assert (G(img, am, xm, ym)[0] - G(img, am.flip(1), xm, ym)[0]).abs().max() < 1e-5
        assert (G(img, am, xm, ym)[0] - free(img, am, xm, ym)[0]).abs().max() > 1e-3


def test_losses_are_sane():
    torch.manual_seed(0)
    cfg = AMGANConfig(**TINY)
    D = AMGANDiscriminator(cfg)
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert critic_loss(torch.ones(3), torch.zeros(3)) == -1 and generator_adv_loss(torch.ones(3)) == -1
    gp = gradient_penalty(D, real, fake)
    assert gp.ndim == 0 and gp >= 0 and gp.requires_grad
    m = torch.rand(2, MAP_CHANNELS, 32, 32)
    assert age_loss(torch.nn.functional.adaptive_avg_pool2d(m, AGE_GRID), m) < 1e-12
    assert loc_loss(torch.zeros(2, 2), torch.ones(2, 2)) == 1
    assert cycle_loss(real, real) == 0 and cycle_loss(fake, real) > 0
    assert attention_loss(torch.ones(1, 1, 8, 8)) == pytest.approx(0.1)
    assert attention_loss(torch.zeros(1, 1, 8, 8)) == 0


def test_colour_shift_loss_charges_tints_not_brightness_or_fine_texture():
    from train.amgan.losses import colour_shift_loss

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    tint = x + torch.tensor([-0.1, 0.1, -0.1]).view(1, 3, 1, 1)  # greener
    brighter = x + 0.1  # the same shift in every channel: luma only
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 0.2 - 0.1
    texture = x + checker * torch.tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1)  # fine colour noise, zero mean per block
    assert colour_shift_loss(x, x) == 0
    assert colour_shift_loss(brighter, x) < 1e-6 and colour_shift_loss(texture, x) < 1e-6
    assert colour_shift_loss(tint, x) > 0.05


def test_generator_losses_decrease_against_a_fixed_discriminator():
    """30 G-only steps against a frozen D whose age head was taught "map = image brightness"."""
    torch.manual_seed(0)
    cfg, h = AMGANConfig(**TINY), 32
    G, D = AMGANGenerator(cfg), AMGANDiscriminator(cfg)
    opt_d = torch.optim.Adam(D.parameters(), lr=5e-3, betas=(0.0, 0.99))
    for _ in range(40):  # a randomly initialised D's age head is almost constant: give it something to see
        b = torch.rand(8, 1, 1, 1)
        loss = age_loss(D(b * 2 - 1 + 0.1 * torch.randn(8, 3, h, h))[2], b.expand(8, MAP_CHANNELS, h, h))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    loc = location_maps(h, h)[None].expand(2, 2, h, h)
    xm, ym = loc[:, :1], loc[:, 1:]
    b_src = torch.tensor([0.2, 0.3]).view(2, 1, 1, 1)
    img = b_src * 2 - 1 + 0.1 * torch.randn(2, 3, h, h)
    src = b_src.expand(2, MAP_CHANNELS, h, h)
    tgt = torch.tensor([0.8, 0.7]).view(2, 1, 1, 1).expand(2, MAP_CHANNELS, h, h)
    opt = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))

    def losses():
        fake, a, _ = G(img, tgt, xm, ym)
        rec = G(fake, src, xm, ym)[0]
        return age_loss(D(fake)[2], tgt), cycle_loss(rec, img), a

    with torch.no_grad():
        age0, cyc0, _ = losses()
    for _ in range(30):
        l_age, l_cyc, a = losses()
        loss = 100 * l_age + 10 * l_cyc + attention_loss(a)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        age1, cyc1, _ = losses()
    assert age1 < 0.5 * age0 and cyc1 < cyc0


def test_shift_consistency_loss_is_zero_for_content_and_charges_a_pattern_fixed_to_the_crop():
    from train.amgan.losses import shift_consistency_loss

    g = torch.Generator().manual_seed(0)
    face = torch.rand(4, 3, 80, 80, generator=g)
    corners = torch.tensor([[4, 4], [5, 9], [10, 3], [2, 12]])
    offset = torch.tensor([[3, -2], [-5, 4], [7, 0], [0, -9]])

    def crop(c):
        return torch.stack([face[i, :, t : t + 48, j : j + 48] for i, (t, j) in enumerate(c.tolist())])

    a, b = crop(corners), crop(corners + offset)
    assert shift_consistency_loss(a, b, offset, margin=4) < 1e-7  # the same pixels wherever the crop starts
    stripes = (torch.arange(48) % 16 < 2).float()[:, None]  # lines on fixed rows of each crop
    assert shift_consistency_loss(a + stripes, b + stripes, offset, margin=4) > 0.05
    by16 = torch.tensor([[16, 0]] * 4)  # moved by the pattern's period: it agrees again
    assert shift_consistency_loss(a + stripes, crop(corners + by16) + stripes, by16, margin=4) < 1e-7
    far = torch.full_like(offset, 60)  # no overlap left
    assert shift_consistency_loss(a, b, far, margin=4) == 0
