"""train.eval.amgan's locality measure, on changes whose place we know."""

import torch

from faceage.amgan.maps import SIGNS
from faceage.amgan.model import AMGANConfig
from train.amgan.maps import MapBasis
from train.amgan.sign_scores import template_zone_masks
from train.eval.amgan import chroma_share, locality, map_reference


def test_locality_scores_a_change_by_where_it_lies():
    zones = template_zone_masks(64)
    own = torch.zeros(3, 3, 64, 64)
    inside = [own + 0.5 * zones[z] for z in range(len(SIGNS))]  # each edit changes exactly its zone
    everywhere = [own + 0.5 for _ in SIGNS]
    labels = torch.rand(3, len(SIGNS))
    res = locality(own, inside, labels, margin_px=2)
    assert abs(res["locality_mean_share_inside"] - 1.0) < 1e-6
    spread = locality(own, everywhere, labels, margin_px=2)
    assert abs(spread["locality_mean_share_inside"] - spread["locality_mean_zone_area"]) < 1e-6
    assert spread["locality_mean_share_inside_margin"] > spread["locality_mean_share_inside"]


def test_chroma_share_tells_grey_changes_from_coloured_marks():
    mask = torch.zeros(16, 16)
    mask[4:12] = 1
    d = torch.zeros(2, 3, 16, 16)
    d[:, :, 6] = -0.3  # a grey line: R, G, B alike
    assert chroma_share(d, mask) < 1e-6
    green = torch.zeros_like(d)
    green[:, 1, 6] = 0.3
    assert abs(chroma_share(green, mask) - 2 / 3) < 1e-5
    assert chroma_share(green, 1 - mask) == 0.0  # nothing changed outside the mask: no share, no error


def test_map_reference_is_the_blurred_maps_own_share():
    """The map change of a raised sign lies mostly in its zone and almost all within the blur margin;
    the blur keeps it below 1 (what a G that followed its map exactly would score)."""
    basis = MapBasis(64)
    ages, labels = torch.rand(4), torch.rand(4, len(SIGNS)) * 0.5
    ref = map_reference(basis, ages, labels)
    assert set(ref["share_inside"]) == set(SIGNS)
    assert 0.4 < ref["locality_mean_share_inside"] < 0.95
    assert ref["locality_mean_share_inside_margin"] > 0.95


class _StandIn(torch.nn.Module):
    """A stand-in G: the plain pass (no context margin) of the default config."""

    cfg = AMGANConfig()


class _ReadsChannelZero(_StandIn):
    """A stand-in G that draws dark lines where aging-map channel 0 is high and ignores channel 1."""

    def forward(self, x, maps, x_map, y_map):
        lines = (torch.arange(x.shape[-2]) % 3 == 0).float()[:, None]
        return (x - 0.9 * maps[:, :1] * lines).clamp(-1, 1), None, None


def test_other_channel_response_tells_which_channel_g_reads():
    from faceage.amgan.maps import SIGN_CHANNEL
    from train.amgan.sign_scores import SignCalibration, masked_measures
    from train.eval.amgan import Runner, other_channel_response, raised_labels, texture_response

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(6, 3, 64, 64)
    ages, labels = torch.rand(6, generator=g) * 0.5, torch.rand(6, len(SIGNS), generator=g) * 0.5
    run = Runner(_ReadsChannelZero(), 64)
    zones = template_zone_masks(64)[None].expand(6, -1, -1, -1)
    spread = run(x, torch.rand(6, generator=g), torch.rand(6, len(SIGNS), generator=g))
    cal = SignCalibration.fit(torch.cat([masked_measures(o, zones) for o in (x, spread)]))
    own = run(x, ages, labels)
    normal = texture_response(own, [run(x, ages, r) for r in raised_labels(labels)], cal)["texture_response"]
    moved = other_channel_response(run, x, ages, labels, own, cal)
    for sign in SIGNS:
        read, ignored = (
            (normal[sign]["own_zone"], moved[sign])
            if SIGN_CHANNEL[sign] == 0
            else (moved[sign], normal[sign]["own_zone"])
        )
        assert read > 0.1 and abs(ignored) < 0.02, (sign, read, ignored)


class _GridLines(_StandIn):
    """A stand-in G that darkens rows 2 and 6 of every 16 of its own input (lines fixed to its grid)."""

    def forward(self, x, maps, x_map, y_map):
        rows = torch.arange(x.shape[-2]) % 16
        lines = ((rows == 2) | (rows == 6)).float()[:, None]
        return (x - 0.5 * lines).clamp(-1, 1), None, None


class _ContentLines(_StandIn):
    """A stand-in G that darkens the pixels where the face's green channel is high (lines that follow it)."""

    def forward(self, x, maps, x_map, y_map):
        return (x - 0.5 * (x[:, 1:2] > 0.9).float()).clamp(-1, 1), None, None


def test_crop_consistency_and_grid_share_tell_grid_lines_from_face_lines():
    from train.eval.amgan import Runner, crop_consistency, line_measures

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g) * 1.2 - 0.6
    x[:, 1] = -0.5
    for i, r in enumerate((5, 19, 44)):  # "wrinkles" of the face: its own rows, not the grid's
        x[i, 1, r::9] = 1.0
    a = torch.full((3,), 0.7)
    maps = MapBasis(64).maps(a, a[:, None].expand(-1, len(SIGNS)))
    grid, face = Runner(_GridLines(), 64), Runner(_ContentLines(), 64)
    out_grid, out_face = grid.on_maps(x, maps), face.on_maps(x, maps)
    lines_grid, lines_face = line_measures(out_grid, x), line_measures(out_face, x)
    assert lines_grid["grid_share_inner"] > 0.99 and lines_face["grid_share_inner"] < 0.8
    assert lines_grid["energy_inner"] > 20 and lines_face["energy_inner"] > 20  # both draw lines
    c_grid = crop_consistency(grid, x, maps, out_grid, margin=8)
    c_face = crop_consistency(face, x, maps, out_face, margin=8)
    assert c_face["mean_shift_1_to_15"] == 0 and c_grid["shift_0"] == 0 and c_grid["by_shift"][16] == 0
    assert c_grid["mean_shift_1_to_15"] > 0.02
