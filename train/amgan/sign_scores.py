"""Weak clinical-sign labels for faces that have only an age label (UTKFace).

AgingMapGAN (Despois et al., ECCV 2020 workshops, Sec. 3.1, 4.3) fills each sign zone of the aging
map with an expert atlas grade. UTKFace has **no** such grades: it has ages. This module makes a weak,
documented stand-in, measured from the pixels of each zone, so that in the training data the sign
values vary independently of age and per-sign control has something to learn from:

1. **Ridge energy** (:func:`ridge_energy`). The face is turned to luminance in [0, 1]. At two scales
   ``sigma`` in :data:`RIDGE_SIGMAS` pixels (at 128 px; scaled with the image side) the Hessian of the
   Gaussian-smoothed luminance is taken (``sigma**2``-normalised, Lindeberg) and its larger
   eigenvalue ``lambda_1`` kept where positive: a dark thin line (a wrinkle, a fold) is a valley, with
   strong positive curvature across it. The response is the max over the scales.
2. **Per-zone measure** (:func:`zone_measures`): mean response inside the sign's zone divided by the
   zone's mean luminance (+ 0.05), so a dim, shadowed zone is not scored as wrinkled only because it
   is dark. Zones are :func:`faceage.amgan.maps.sign_zone_masks` of the landmarks.
3. **Calibration** (:class:`SignCalibration`): per sign, the empirical CDF of the measure over the
   training split (101 quantile knots, linear interpolation), so the image part of a label is
   uniform in [0, 1] over the training faces.
4. **Blend with age**: ``score = w * CDF(measure) + (1 - w) * normalize_age(age)`` with
   ``w =`` :data:`IMAGE_WEIGHT` ``= 0.5``: half texture, half age. The age half keeps the map coherent
   with the age filled around the zones (an 80-year-old's forehead is not labelled 0); the texture half
   makes two faces of the same age differ by zone, and the zones of one face differ from each other.

Landmarks. UTKFace's crops are aligned, so the zones are placed from the template landmarks
:func:`faceage.face.align.template_points` scaled to the crop, not from per-face detection. Training
can place each face's map zones from its own landmarks (:mod:`train.amgan.placement`: dlib took 10.7
minutes for the 21,346 training crops at 128 px); on those crops the zones then move by a median 0.7 px
at the crop centre (90th percentile 1.5 px), well inside the map's blur, so the labels keep the
template zones. The measure is crude: it also fires on hair strands, beard, glasses rims and shadows.
These are weak labels, not clinical grades.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F

from faceage.amgan.maps import SIGNS, sign_zone_masks
from faceage.checkpoint import load_checkpoint, save_checkpoint
from faceage.data.ages import normalize_age
from faceage.errors import BadParameterError
from faceage.face.align import template_points
from faceage.filters import gaussian_blur, luma

__all__ = [
    "IMAGE_WEIGHT",
    "RIDGE_SIGMAS",
    "SignCalibration",
    "blend_with_age",
    "masked_measures",
    "ridge_energy",
    "template_zone_masks",
    "zone_measures",
]

IMAGE_WEIGHT: Final = 0.5
"""Weight of the image (ridge-energy CDF) part of a label; the rest is the normalised age."""

RIDGE_SIGMAS: Final[tuple[float, ...]] = (1.0, 2.0)
"""Hessian scales in pixels at a 128-px crop (wrinkles are 1-4 px wide there)."""

N_KNOTS: Final = 101


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise BadParameterError(f"images must be a [N, 3, H, W] tensor in [-1, 1], got {shape}")
    return images.float()


def luminance(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, 1, H, W] luminance in [0, 1]."""
    return luma((_check_images(images) + 1) / 2)


def ridge_energy(images: torch.Tensor, achromatic: bool = False) -> torch.Tensor:
    """Valley (dark-line) strength [N, 1, H, W] >= 0: max over scales of relu(lambda_1 of the Hessian).

    ``achromatic``: the valley strength of each of R, G, B (in [0, 1]) and the smallest of the three, so a
    line counts only as far as it is dark in every channel (a grey line: as in luminance; a line of one
    colour, dark in one channel and not in the others: about 0). AMGAN's training can judge its fakes with
    it (``amgan.judge``); the labels themselves use luminance."""
    y = (_check_images(images) + 1) / 2 if achromatic else luminance(images)
    side = y.shape[-1]
    out = torch.zeros_like(y)
    for s128 in RIDGE_SIGMAS:
        s = s128 * side / 128.0
        g = gaussian_blur(y, s)
        p = F.pad(g, (1, 1, 1, 1), mode="replicate")
        c = p[..., 1:-1, 1:-1]
        dxx = p[..., 1:-1, 2:] - 2 * c + p[..., 1:-1, :-2]
        dyy = p[..., 2:, 1:-1] - 2 * c + p[..., :-2, 1:-1]
        dxy = (p[..., 2:, 2:] - p[..., 2:, :-2] - p[..., :-2, 2:] + p[..., :-2, :-2]) / 4
        # (+1e-12 under the root: a finite gradient where the Hessian is isotropic; values move by <= 1e-6)
        lam1 = (dxx + dyy) / 2 + torch.sqrt(((dxx - dyy) / 2) ** 2 + dxy**2 + 1e-12)
        out = torch.maximum(out, (s * s) * lam1.clamp(min=0))
    return out.amin(1, keepdim=True) if achromatic else out


def template_zone_masks(size: int) -> torch.Tensor:
    """Zones of :data:`SIGNS` on the canonical aligned frame, [len(SIGNS), size, size] float (0/1)."""

    masks = sign_zone_masks(template_points(size), size)
    return torch.from_numpy(np.stack([masks[s] for s in SIGNS]).astype(np.float32))


def zone_measures(
    images: torch.Tensor, zones: torch.Tensor, chunk: int = 256, achromatic: bool = False
) -> torch.Tensor:
    """Raw per-zone measure [N, Z]: mean ridge energy in the zone / (mean zone luminance + 0.05).

    ``zones`` [Z, H, W] 0/1 masks (the same for every image, e.g. :func:`template_zone_masks`) or
    [N, Z, H, W] (per-face landmarks). An empty zone raises.
    """
    images = _check_images(images)
    if zones.dim() not in (3, 4) or zones.shape[-2:] != images.shape[-2:]:
        raise BadParameterError(
            f"zones must be [Z, H, W] or [N, Z, H, W] at the image size "
            f"{tuple(images.shape[-2:])}, got {tuple(zones.shape)}"
        )
    area = zones.flatten(-2).sum(-1)
    if (area <= 0).any():
        raise BadParameterError("a sign zone is empty at this image size (the face is too small)")
    out = []
    for i in range(0, len(images), chunk):
        z = zones if zones.dim() == 3 else zones[i : i + chunk]
        out.append(masked_measures(images[i : i + chunk], z, achromatic))
    return torch.cat(out)


def masked_measures(images: torch.Tensor, zones: torch.Tensor, achromatic: bool = False) -> torch.Tensor:
    """:func:`zone_measures` without its checks, differentiable in ``images`` (AMGAN's optional sign term
    measures G's patches with it); an empty zone gives 0, not an error."""
    r = ridge_energy(images, achromatic)  # [n, 1, H, W]
    y = luminance(images)
    area = zones.flatten(-2).sum(-1).clamp(min=1.0)
    mean_r = (r * zones).flatten(-2).sum(-1) / area  # [n, Z]
    mean_y = (y * zones).flatten(-2).sum(-1) / area
    return mean_r / (mean_y + 0.05)


def blend_with_age(image_part: torch.Tensor, ages: torch.Tensor, weight: float = IMAGE_WEIGHT) -> torch.Tensor:
    """``weight * image_part + (1 - weight) * normalize_age(age)`` per sign, [N, Z] in [0, 1]."""
    if not 0.0 <= weight <= 1.0:
        raise BadParameterError(f"the image weight must be in [0, 1], got {weight}")
    a = normalize_age(ages.float())[:, None]
    return (weight * image_part + (1 - weight) * a).clamp(0.0, 1.0)


@dataclass
class SignCalibration:
    """Per-sign quantile knots of the raw measure over a training set: measure -> CDF in [0, 1]."""

    knots: torch.Tensor  # [Z, N_KNOTS], non-decreasing per row

    @classmethod
    def fit(cls, measures: torch.Tensor) -> SignCalibration:
        if measures.dim() != 2 or len(measures) < 2:
            raise BadParameterError(f"calibration needs [N >= 2, Z] measures, got {tuple(measures.shape)}")
        q = torch.linspace(0, 1, N_KNOTS, dtype=torch.float64)
        return cls(torch.quantile(measures.double(), q, dim=0).T.float().contiguous())

    def soft_cdf(self, measures: torch.Tensor) -> torch.Tensor:
        """:meth:`cdf` in torch, differentiable in ``measures`` [N, Z] (piecewise linear between knots,
        flat outside them); agrees with :meth:`cdf` but where knots tie."""
        k = self.knots.to(measures)  # [Z, K]
        K = k.shape[1]
        m = measures.T.contiguous()  # [Z, N]
        hi = torch.searchsorted(k, m.detach()).clamp(1, K - 1)
        k0, k1 = k.gather(1, hi - 1), k.gather(1, hi)
        t = ((m - k0) / (k1 - k0).clamp(min=1e-6)).clamp(0.0, 1.0)
        return ((hi - 1 + t) / (K - 1)).T

    def cdf(self, measures: torch.Tensor) -> torch.Tensor:
        """Empirical CDF of each column of ``measures`` [N, Z] -> [N, Z] in [0, 1] (piecewise linear)."""
        if measures.dim() != 2 or measures.shape[1] != self.knots.shape[0]:
            raise BadParameterError(f"measures must be [N, {self.knots.shape[0]}], got {tuple(measures.shape)}")
        levels = torch.linspace(0, 1, self.knots.shape[1])
        out = torch.empty_like(measures, dtype=torch.float32)
        for z in range(measures.shape[1]):
            k = self.knots[z].numpy().astype(np.float64)
            k = k + np.arange(len(k)) * 1e-12  # strictly increasing for np.interp on ties
            out[:, z] = torch.from_numpy(np.interp(measures[:, z].double().numpy(), k, levels.double().numpy())).float()
        return out


def compute_labels(
    images: torch.Tensor,
    ages: torch.Tensor,
    calibration: SignCalibration | None = None,
    zones: torch.Tensor | None = None,
    achromatic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, SignCalibration]:
    """(scores [N, Z], raw measures [N, Z], calibration); fits the calibration when none is given.
    ``achromatic``: the measure of :func:`ridge_energy` ``(achromatic=True)`` (AMGAN's achromatic judge)."""
    zones = template_zone_masks(images.shape[-1]) if zones is None else zones
    raw = zone_measures(images, zones, achromatic=achromatic)
    calibration = calibration or SignCalibration.fit(raw)
    return blend_with_age(calibration.cdf(raw), ages), raw, calibration


# ----------------------------------------------------------------------------------------------
# Cached labels of a packed split


def labels_path(pack: str | Path, achromatic: bool = False) -> Path:
    """Where the labels of a packed split are cached: ``<pack stem>.signs.safetensors`` beside it
    (``.signs-achromatic.safetensors`` for the achromatic measure's)."""
    pack = Path(pack)
    suffix = ".signs-achromatic.safetensors" if achromatic else ".signs.safetensors"
    return pack.with_name(pack.name.removesuffix(".safetensors") + suffix)


def _images_of(dataset, chunk: int = 1024):
    """[N, 3, S, S] float in [-1, 1] from a PackedFaces (uint8 NHWC held in memory), chunked."""
    for i in range(0, len(dataset), chunk):
        u8 = dataset.images[i : i + chunk]
        yield u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def packed_labels(
    dataset, cache: str | Path, calibration: SignCalibration | None = None, achromatic: bool = False
) -> dict:
    """Sign labels of every face of a PackedFaces, computed once and cached as safetensors.

    Returns ``{"scores": [N, Z], "raw": [N, Z], "knots": [Z, K], "names": [...]}``. The training split
    is calibrated on itself; pass the training split's calibration for the test split. A cache whose
    face names, measure or calibration do not match is recomputed. ``achromatic``: with the measure of
    :func:`ridge_energy` ``(achromatic=True)``.
    """

    cache = Path(cache)
    names_digest = digest_names(dataset.names)
    if cache.is_file():
        tensors, manifest = load_checkpoint(cache)
        same_cal = calibration is None or torch.equal(tensors["knots"], calibration.knots)
        same_measure = manifest.get("achromatic", False) == achromatic
        if (
            manifest.get("names_sha") == names_digest
            and manifest.get("signs") == list(SIGNS)
            and same_cal
            and same_measure
        ):
            return {**tensors, "names": dataset.names}
    zones = template_zone_masks(dataset.size)
    raw = torch.cat([zone_measures(x, zones, achromatic=achromatic) for x in _images_of(dataset)])
    calibration = calibration or SignCalibration.fit(raw)
    scores = blend_with_age(calibration.cdf(raw), dataset.ages)
    tensors = {"scores": scores, "raw": raw, "knots": calibration.knots}
    save_checkpoint(
        cache,
        tensors,
        {
            "kind": "sign-labels",
            "signs": list(SIGNS),
            "names_sha": names_digest,
            "image_weight": IMAGE_WEIGHT,
            "ridge_sigmas": list(RIDGE_SIGMAS),
            "achromatic": achromatic,
            "count": len(dataset.names),
        },
    )
    return {**tensors, "names": dataset.names}


def digest_names(names: list[str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(names).encode()).hexdigest()
