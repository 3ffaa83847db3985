"""Measure the shipped AMGAN generator on the UTKFace test split and draw the signs figure.

    python -m train.eval.amgan --weights assets/amgan_utkface128.safetensors --n 100 \\
        --out docs/amgan_eval.json --figure docs/amgan_signs.png

Numbers (all on ``n`` test faces spread evenly over the packed test split, full 128-px faces, G_ema):

* **age**: the evaluation estimator A (:mod:`faceage.age.estimator`, never seen by AMGAN) on the
  inputs and on the outputs of age-only ("uniform") maps at target ages 20 and 70 (Sec. 5.4).
* **locality**, per sign: the face's own map (its age + weak labels, :mod:`train.amgan.sign_scores`) is
  changed only in that sign's zone, to 1.0; ``delta = |G(x, raised) - G(x, own)|`` summed over RGB;
  *share inside* = sum of delta inside the zone / sum of delta over the image. *area* = the zone's share
  of the image (what a change spread evenly would score); *inside+margin* counts a band of 2 blur sigmas
  around the zone too (the map itself is blurred by one sigma there). Also the mean |change| in the zone.
  *map reference*: the same shares for the aging maps' own change (what a G that followed its map pixel
  for pixel would score: the blur puts about a third of a zone's map change outside it).
* **reconstruction**: L1 between x and G(x, own map) on [0, 1] pixels.
* **texture response**, per sign (with the same raise as locality): the weak labels' texture measure
  (:mod:`train.amgan.sign_scores`: ridge energy over luminance in the zone, through the training split's CDF)
  of G(x, raised) minus that of G(x, own), in the raised sign's zone and, averaged, in the other zones.
  What a sign slider is labelled to do. Not an independent judge: ``amgan.lambda_sign`` trains on it.
* **texture response in the other channel**, per sign: the same, with the sign's map change written
  into the next aging-map channel (channel 0 <-> 1) instead of its own: does G read which channel a
  value is in? (A G with free map kernels ignored channel 1, the lip corners' channel: net.tie_map_channels.)
* **crop consistency** (uniform map, age 70): G on the face cropped from row dy (``S - 16`` rows) against
  the same rows of G on the whole face, mean |difference| on [0, 1] pixels at least 16 px from the crop's
  borders, for dy = 0..16. A G whose output follows the face and the map differs only by its borders'
  reach (about what dy = 0 shows, where only the bottom border moved); one that draws by its own grid
  (lines on fixed rows of every 16) differs more wherever dy is not a multiple of 16.
* **lines** (uniform map, age 70): the horizontal-line energy (mean |vertical second difference| of the
  luminance change, per mille of [0, 1]) in the top 16 rows, the bottom 16 and between them; and between
  them the *grid share*: that energy summed by row modulo 16, the share of the 8 strongest of those 16
  phases: about 0.5 for lines that follow the face, near 1 for lines on fixed rows of G's 16-pixel grid.
* **chroma share**, per sign (with the same raise as locality): of the change in the zone and its margin,
  the share that is colour rather than brightness, sum |chroma change| / (sum |luma change| + sum |chroma
  change|), chroma the two colour differences of :func:`train.amgan.losses.chroma`: 0 for a grey line
  (R, G, B moved alike), 2/3 for a line drawn in the G channel alone (a green mark, or a magenta one
  where G is lowered). Also for the uniform map at age 70 against the input, over the whole face. *Real texture*:
  the same share of the test faces' own fine texture (the face minus its 7 x 7 box mean) in each zone:
  what wrinkles, pores and hairs of real faces score.
* **colour cast**: :func:`train.amgan.losses.colour_shift_loss` of the uniform-map outputs against
  their inputs (mean |chroma change| over 8 x 8 blocks, on [0, 1] pixels): a tint of the face, not its
  texture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceage.age.estimator import AgeEstimator
from faceage.amgan.editor import net_config
from faceage.amgan.maps import SIGNS, location_maps
from faceage.amgan.model import AMGANGenerator, generate
from faceage.checkpoint import load_checkpoint
from faceage.data.ages import normalize_age
from faceage.data.utkface import PackedFaces
from faceage.filters import luma
from train.amgan.losses import chroma, colour_shift_loss
from train.amgan.maps import MapBasis
from train.amgan.sign_scores import SignCalibration, labels_path, masked_measures, packed_labels, template_zone_masks

TRAIN_PACK = "packed/utkface_train_128.safetensors"
TEST_PACK = "packed/utkface_test_128.safetensors"


def load_generator(path: Path) -> tuple[AMGANGenerator, dict]:
    tensors, manifest = load_checkpoint(path)
    if "config" not in manifest:
        raise ValueError(f"{path}: no AMGAN config in the manifest")
    G = AMGANGenerator(net_config(manifest["config"]))
    G.load_state_dict(tensors)
    return G.eval(), manifest


def test_faces(n: int):
    """(images [n,3,S,S], ages [n], labels [n, Z], names, the labels' calibration), spread evenly over the
    test split."""

    cache = labels_path(TRAIN_PACK)
    if not cache.is_file():  # the training run computes and caches them on first use
        packed_labels(PackedFaces(TRAIN_PACK), cache)
    cal = SignCalibration(load_checkpoint(cache)[0]["knots"])
    test = PackedFaces(TEST_PACK)
    labels = packed_labels(test, labels_path(TEST_PACK), cal)["scores"]
    idx = np.linspace(0, len(test) - 1, n).round().astype(int)
    x = test.images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, test.ages[idx].float(), labels[idx], [test.names[i] for i in idx], cal


class Runner:
    """G on full faces with maps from :class:`MapBasis` (template zones: the crops are aligned; or the
    zones of other ``landmarks``, the same for every face)."""

    def __init__(self, G: AMGANGenerator, size: int, landmarks=None):
        self.G, self.basis = G, MapBasis(size, landmarks)
        self.loc = location_maps(size, size)[None]

    def __call__(self, x, age_norm, scores, chunk: int = 16):
        return self.on_maps(x, self.basis.maps(age_norm, scores), chunk)

    @torch.no_grad()
    def on_maps(self, x, maps, chunk: int = 16):
        """G(x | maps) for aging maps [N, C, S, S] given whole."""
        return torch.cat(
            [generate(self.G, x[i : i + chunk], maps[i : i + chunk], self.loc)[0] for i in range(0, len(x), chunk)]
        )


def measure(G, x, ages, labels, cal: SignCalibration | None = None) -> dict:

    S = x.shape[-1]
    run = Runner(G, S)
    A = AgeEstimator.load()
    a_own = normalize_age(ages)
    own = run(x, a_own, labels)
    res = {
        "n_faces": len(x),
        "estimator_age_input": float(A.age(x).mean()),
        "reconstruction_l1": float(((own - x).abs() / 2).mean()),
    }
    for t in (20, 70):
        a = torch.full((len(x),), normalize_age(float(t)))
        maps = run.basis.maps(a, a[:, None].expand(-1, len(SIGNS)))
        out = run.on_maps(x, maps)
        if t == 70:
            res["lines_uniform_70"] = line_measures(out, x)
            res["crop_consistency_uniform_70"] = crop_consistency(run, x, maps, out)
            res["chroma_share_uniform_70"] = chroma_share(out - x, torch.ones(S, S))
        res[f"estimator_age_uniform_{t}"] = float(A.age(out).mean())
        res[f"mean_abs_change_uniform_{t}"] = float(((out - x).abs() / 2).mean())
        res[f"colour_shift_uniform_{t}"] = float(colour_shift_loss(out, x) / 2)
    raised = raised_outputs(run, x, a_own, labels)
    res.update(locality(own, raised, labels, run.basis.blur_margin))
    res["map_reference"] = map_reference(run.basis, a_own, labels)
    res.update(chroma_shares(x, own, raised, run.basis.blur_margin))
    if cal is not None:
        res.update(texture_response(own, raised, cal))
        res["texture_response_other_channel"] = other_channel_response(run, x, a_own, labels, own, cal)
    return res


def crop_consistency(run: Runner, x, maps, full, margin: int = 16, period: int = 16) -> dict:
    """G on ``x`` cropped from row dy, rows dy .. dy + S - period, against ``full`` (G on the whole of
    ``x`` with ``maps``) on those rows, mean |difference| on [0, 1] pixels ``margin`` px inside the crop,
    for dy = 0..period (module docstring)."""
    S = x.shape[-2]
    by_shift = {}
    for dy in range(period + 1):
        rows = slice(dy, dy + S - period)
        with torch.no_grad():  # the crop's window of the whole face's location maps
            crop = generate(run.G, x[:, :, rows], maps[:, :, rows], run.loc[:, :, dy : dy + S - period])[0]
        diff = (crop - full[:, :, rows])[:, :, margin:-margin, margin:-margin]
        by_shift[dy] = round(float((diff.abs() / 2).mean()), 5)
    off = [v for k, v in by_shift.items() if k % period]
    return {"by_shift": by_shift, "shift_0": by_shift[0], "mean_shift_1_to_15": float(np.mean(off))}


def row_lines(out, x) -> torch.Tensor:
    """[S]: the horizontal-line energy of ``out - x`` per row, mean |vertical second difference| of the
    luminance change on [0, 1] pixels (0 on the first and last rows)."""
    d = luma(out - x)[:, 0] / 2
    lines = torch.zeros(d.shape[1])
    lines[1:-1] = (d[:, 1:-1] - 0.5 * (d[:, :-2] + d[:, 2:])).abs().mean((0, 2))
    return lines


def line_measures(out, x, period: int = 16, margin: int = 16) -> dict[str, float]:
    """The line energy of :func:`row_lines` (per mille) in the top and bottom ``margin`` rows and between
    them, and the grid line share of the rows between them (module docstring)."""
    lines = row_lines(out, x)
    inner = lines[margin:-margin]
    phase = torch.zeros(period).index_add_(0, torch.arange(margin, len(lines) - margin) % period, inner)
    share = phase.sort(descending=True).values[: period // 2].sum() / phase.sum().clamp(min=1e-12)
    return {
        "energy_top": round(1000 * float(lines[1:margin].mean()), 3),
        "energy_inner": round(1000 * float(inner.mean()), 3),
        "energy_bottom": round(1000 * float(lines[-margin:-1].mean()), 3),
        "grid_share_inner": round(float(share), 4),
    }


def raised_labels(labels) -> list[torch.Tensor]:
    """The own labels with sign z raised to 1.0, for each sign z of :data:`SIGNS` (the per-sign edits that
    locality and texture response both measure)."""
    out = []
    for z in range(len(SIGNS)):
        raised = labels.clone()
        raised[:, z] = 1.0
        out.append(raised)
    return out


def raised_outputs(run: Runner, x, a_own, labels) -> list[torch.Tensor]:
    """G(x, own map with sign z raised) for each :func:`raised_labels`."""
    return [run(x, a_own, r) for r in raised_labels(labels)]


def map_reference(basis: MapBasis, a_own, labels) -> dict:
    """:func:`locality` of the aging maps themselves: how much of |map(raised) - map(own)| (both channels)
    lies in the zone. The map is blurred, so even a G that followed it pixel for pixel would not score 1;
    this is the share such a G would score."""
    own = basis.maps(a_own, labels)
    res = locality(own, [basis.maps(a_own, r) for r in raised_labels(labels)], labels, basis.blur_margin)
    return {
        "share_inside": {k: round(v["share_inside"], 4) for k, v in res["locality"].items()},
        **{k: v for k, v in res.items() if k.startswith("locality_mean_share")},
    }


def locality(own, raised: list[torch.Tensor], labels, margin_px: int) -> dict:
    """Per-sign share of |change| inside the raised sign's zone (see the module docstring): ``own`` is
    G(x, own map), ``raised`` the outputs of :func:`raised_outputs`, ``margin_px`` the blur margin."""
    res = {}
    zones = template_zone_masks(own.shape[-1])
    margin = zone_margins(own.shape[-1], margin_px)
    per_sign = {}
    for z, sign in enumerate(SIGNS):
        delta = ((raised[z] - own).abs() / 2).sum(1)  # [n, S, S]
        total = delta.flatten(1).sum(1).clamp(min=1e-12)
        inside = (delta * zones[z]).flatten(1).sum(1) / total
        inside_m = (delta * margin[z]).flatten(1).sum(1) / total
        per_sign[sign] = {
            "share_inside": float(inside.mean()),
            "share_inside_margin": float(inside_m.mean()),
            "zone_area": float(zones[z].mean()),
            "margin_area": float(margin[z].mean()),
            "mean_abs_change_in_zone": float((delta * zones[z]).flatten(1).sum(1).mean() / zones[z].sum() / 3),
            "mean_label": float(labels[:, z].mean()),
        }
    res["locality"] = per_sign
    res["locality_mean_share_inside"] = float(np.mean([v["share_inside"] for v in per_sign.values()]))
    res["locality_mean_zone_area"] = float(np.mean([v["zone_area"] for v in per_sign.values()]))
    res["locality_mean_share_inside_margin"] = float(np.mean([v["share_inside_margin"] for v in per_sign.values()]))
    res["locality_mean_margin_area"] = float(np.mean([v["margin_area"] for v in per_sign.values()]))
    return res


def zone_margins(size: int, margin_px: int) -> torch.Tensor:
    """[Z, S, S]: each template zone grown by ``margin_px`` (the band :func:`locality` counts as near)."""
    r = margin_px
    return F.max_pool2d(template_zone_masks(size)[:, None], 2 * r + 1, stride=1, padding=r)[:, 0]


def chroma_share(delta: torch.Tensor, mask: torch.Tensor) -> float:
    """Of a change ``delta`` [N, 3, S, S] (RGB) inside ``mask`` [S, S], the share that is colour: sum |chroma|
    / (sum |luma| + sum |chroma|) over the pixels and images (module docstring)."""
    c = (chroma(delta).abs().sum(1) * mask).sum()
    y = (luma(delta).abs()[:, 0] * mask).sum()
    return float(c / (c + y).clamp(min=1e-12))


def chroma_shares(x, own, raised: list[torch.Tensor], margin_px: int) -> dict:
    """Per sign, :func:`chroma_share` of the raise's change in its zone and margin, and of the faces' own
    fine texture there (``x`` minus its 7 x 7 box mean: the real reference)."""
    near = zone_margins(x.shape[-1], margin_px)
    fine = x - F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)
    per_sign = {
        sign: {"raise": chroma_share(raised[z] - own, near[z]), "real_texture": chroma_share(fine, near[z])}
        for z, sign in enumerate(SIGNS)
    }
    return {
        "chroma_share": per_sign,
        "chroma_share_mean_raise": float(np.mean([v["raise"] for v in per_sign.values()])),
        "chroma_share_mean_real_texture": float(np.mean([v["real_texture"] for v in per_sign.values()])),
    }


def zone_texture(images, cal: SignCalibration) -> torch.Tensor:
    """[N, Z]: the weak labels' texture CDF of ``images`` in each template zone."""
    zones = template_zone_masks(images.shape[-1])
    return cal.soft_cdf(masked_measures(images, zones[None].expand(len(images), -1, -1, -1)))


def texture_response(own, raised: list[torch.Tensor], cal: SignCalibration) -> dict:
    """Per-sign change of the labels' texture CDF when that sign is raised to 1.0 (module docstring);
    ``own`` and ``raised`` as for :func:`locality`."""
    base = zone_texture(own, cal)
    per_sign = {}
    for z, sign in enumerate(SIGNS):
        d = (zone_texture(raised[z], cal) - base).mean(0)  # [Z]
        others = torch.cat([d[:z], d[z + 1 :]])
        per_sign[sign] = {"own_zone": float(d[z]), "other_zones_mean_abs": float(others.abs().mean())}
    return {
        "texture_response": per_sign,
        "texture_response_mean_own": float(np.mean([v["own_zone"] for v in per_sign.values()])),
        "texture_response_mean_others": float(np.mean([v["other_zones_mean_abs"] for v in per_sign.values()])),
    }


def other_channel_response(run: Runner, x, a_own, labels, own, cal: SignCalibration) -> dict[str, float]:
    """Per sign, the texture response in its zone when its raise (the map change of
    :func:`raised_labels`) is written into the next map channel instead of its own: whether G reads
    what a channel says or only where values are high. Near :func:`texture_response`'s own value: G
    applies one rule to every channel; near 0: G reads this sign's channel and ignores the other one."""
    base = zone_texture(own, cal)
    m = run.basis.maps(a_own, labels)
    out = {}
    for z, r in enumerate(raised_labels(labels)):
        moved = run.on_maps(x, m + (run.basis.maps(a_own, r) - m).roll(1, dims=1))
        out[SIGNS[z]] = float((zone_texture(moved, cal) - base)[:, z].mean())
    return out


def figure(G, x, age, labels, out: Path, gain: float = 4.0) -> None:
    """Row 1: input, own map, each sign raised alone (to 1.0); row 2: |change| x gain; row 3: uniform ages."""
    from PIL import Image, ImageDraw

    S = x.shape[-1]
    run = Runner(G, S)
    x1, a1, l1 = x[:1], normalize_age(age[:1]), labels[:1]
    own = run(x1, a1, l1)
    edits, diffs = [], []
    for z in range(len(SIGNS)):
        r = l1.clone()
        r[:, z] = 1.0
        e = run(x1, a1, r)
        edits.append(e[0])
        diffs.append(((e - own).abs().mean(1, keepdim=True) * gain).clamp(0, 1)[0].expand(3, -1, -1) * 2 - 1)
    ages = (10, 20, 30, 40, 50, 60, 70, 80)
    uni = [
        run(x1, torch.tensor([normalize_age(float(t))]), torch.full((1, len(SIGNS)), normalize_age(float(t))))[0]
        for t in ages
    ]

    def to_img(t):
        return Image.fromarray(((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())

    cols = 2 + len(SIGNS)
    label_h = 14
    W, H = cols * S, 3 * (S + label_h)
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    rows = [
        [("input", x1[0]), ("own map", own[0])] + [(s.replace("_", " "), e) for s, e in zip(SIGNS, edits)],
        [("", None), (f"|change| x{gain:g}", None)] + [("", t) for t in diffs],
        [(f"age {t}", u) for t, u in zip(ages, uni)],
    ]
    for r, row in enumerate(rows):
        y0 = r * (S + label_h)
        for c, (name, t) in enumerate(row):
            if t is not None:
                canvas.paste(to_img(t), (c * S, y0 + label_h))
            d.text((c * S + 2, y0 + 1), name[:21], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=Path("assets/amgan_utkface128.safetensors"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--face", type=int, default=0, help="which of the n faces the figure shows")
    p.add_argument("--out", type=Path)
    p.add_argument("--figure", type=Path)
    p.add_argument("--random-baseline", action="store_true", help="also measure a random-weights G's locality")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    try:
        G, manifest = load_generator(a.weights)
    except Exception as e:  # missing file, not AMGAN weights
        print(f"error: {e}", file=sys.stderr)
        return 2
    x, ages, labels, names, cal = test_faces(a.n)
    if a.figure:
        f = a.face
        figure(G, x[f : f + 1], ages[f : f + 1], labels[f : f + 1], a.figure)
        print(f"wrote {a.figure} (test face {names[f]})")
    res = {"weights": str(a.weights), "step": manifest.get("step"), **measure(G, x, ages, labels, cal)}
    if a.random_baseline:  # how local a same-config G with random weights is (the architecture alone)
        torch.manual_seed(0)
        R = AMGANGenerator(G.cfg).eval()
        rr, a_own = Runner(R, x.shape[-1]), normalize_age(ages)
        base = locality(rr(x, a_own, labels), raised_outputs(rr, x, a_own, labels), labels, rr.basis.blur_margin)
        res["random_init_baseline"] = {k: v for k, v in base.items() if k.startswith("locality_mean")}
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
