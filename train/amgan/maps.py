"""Aging maps of aligned faces, in batches, for AMGAN training (Sec. 3.1, 3.3), and random patches.

On the canonical aligned frame (UTKFace crops) every face has the same zones: those of the template
landmarks (:func:`faceage.face.align.template_points`). :func:`faceage.amgan.maps.build_aging_map` is
linear in the values it writes and the blur is linear, so for fixed zones

    map(age a, scores s) = a * blur(face) + sum_z (s_z - a) * blur(zone_z)   (zone_z in its channel)

(zones of one channel are disjoint and inside the face, so this is exactly the map build_aging_map
writes, blurred). :class:`MapBasis` precomputes the blurred face and zone masks once, and a batch of
maps is one ``einsum`` instead of a polygon fill and a blur per face.
"""

from __future__ import annotations

import numpy as np
import torch

from faceage.amgan.maps import MAP_CHANNELS, SIGN_CHANNEL, SIGNS, build_aging_map, default_blur_sigma
from faceage.data.ages import normalize_age
from faceage.errors import BadParameterError


class MapBasis:
    """Blurred face mask and per-sign zone masks of the template face at side ``size``."""

    def __init__(self, size: int, landmarks: np.ndarray | None = None):
        from faceage.face.align import template_points

        pts = template_points(size) if landmarks is None else landmarks
        self.size = size
        # the map of age 1 with no sign is blur(face) in every channel
        self.face = build_aging_map(pts, size, {}, 100.0)  # [C, S, S]
        zones = torch.zeros(len(SIGNS), MAP_CHANNELS, size, size)
        for z, sign in enumerate(SIGNS):
            # blur(zone) = map(age 0, sign = 1) - map(age 0, no sign) = map(age 0, sign = 1)
            zones[z] = build_aging_map(pts, size, {sign: 1.0}, 0.0)
            others = [c for c in range(MAP_CHANNELS) if c != SIGN_CHANNEL[sign]]
            zones[z, others] = 0.0
        self.zones = zones  # [Z, C, S, S]
        self.sigma = default_blur_sigma(pts)  # the maps' blur std in pixels

    @property
    def blur_margin(self) -> int:
        """Two blur sigmas in whole pixels: the band around a zone that its blurred edge still reaches
        (eval_amgan's "with margin" locality and the locality term's spared band)."""
        return int(round(2 * self.sigma))

    def maps(self, age_norm: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Aging maps [N, C, S, S] for normalised ages [N] and sign scores [N, Z] (all in [0, 1])."""
        if scores.dim() != 2 or scores.shape[1] != len(SIGNS) or age_norm.shape != scores.shape[:1]:
            raise BadParameterError(
                f"need ages [N] and scores [N, {len(SIGNS)}], got {tuple(age_norm.shape)} and {tuple(scores.shape)}"
            )
        a = age_norm.float()
        m = a[:, None, None, None] * self.face[None]
        m = m + torch.einsum("nz,zchw->nchw", scores.float() - a[:, None], self.zones)
        return m.clamp(0.0, 1.0)

    def to(self, device) -> MapBasis:
        self.face, self.zones = self.face.to(device), self.zones.to(device)
        return self


def sample_targets(
    rng: torch.Generator, n: int, age_range: tuple[float, float], image_weight: float, uniform_prob: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target (normalised age [n], sign scores [n, Z]) drawn like the training labels.

    The age is uniform in ``age_range`` years. With probability ``uniform_prob`` the map is age-only
    (every sign = the age, Sec. 5.4); otherwise every sign is drawn independently as
    ``image_weight * U(0, 1) + (1 - image_weight) * age``, the distribution of the weak labels
    (:mod:`train.amgan.sign_scores`) when the texture CDF is uniform.
    """
    lo, hi = age_range
    a = normalize_age(lo + (hi - lo) * torch.rand(n, generator=rng))
    u = torch.rand(n, len(SIGNS), generator=rng)
    uniform = torch.rand(n, generator=rng) < uniform_prob
    s = image_weight * u + (1 - image_weight) * a[:, None]
    s = torch.where(uniform[:, None], a[:, None].expand_as(s), s)
    return a, s


def sample_sign_edits(rng: torch.Generator, scores: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``scores`` [n, Z] with one random sign per row moved away from its value: by a share in
    [0.25, 1] of the way to the farther end of [0, 1] (so by at least 0.125). The pair of maps
    (before, after) is what :func:`train.amgan.losses.zone_leak_loss` compares.

    The sign is uniform over the Z signs, or drawn in proportion to ``weights`` [n, Z] (>= 0; a row
    of zeros draws uniformly), e.g. :func:`covered_edit_weights`."""
    n, Z = scores.shape
    if weights is None:
        k = torch.randint(0, Z, (n,), generator=rng)
    else:
        w = weights.float().cpu()
        w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
        k = torch.multinomial(w, 1, generator=rng)[:, 0]
    step = 0.25 + 0.75 * torch.rand(n, generator=rng)
    rows = torch.arange(n)
    s = scores[rows, k]
    out = scores.clone()
    out[rows, k] = torch.where(s < 0.5, s + step * (1 - s), s - step * s)
    return out


def outside_edit(before: torch.Tensor, after: torch.Tensor, margin: int, rel: float = 0.02) -> torch.Tensor:
    """[N, 1, S, S]: 1 where two aging maps [N, C, S, S] agree, beyond a band of ``margin`` pixels
    around where they differ (by over ``rel`` of their largest difference); 0 in and near the edit."""
    d = (after - before).abs().sum(1, keepdim=True)
    touched = (d > rel * d.flatten(1).amax(1).clamp(min=1e-8)[:, None, None, None]).float()
    if margin > 0:
        touched = torch.nn.functional.max_pool2d(touched, 2 * margin + 1, stride=1, padding=margin)
    return 1.0 - touched


def sample_patches(rng: torch.Generator, n: int, size: int, patch: int) -> torch.Tensor:
    """Top-left corners [n, 2] (top, left) of random ``patch`` x ``patch`` crops of a ``size`` image."""
    if not 0 < patch <= size:
        raise BadParameterError(f"patch ({patch}) must be in 1..{size} (the face size)")
    return torch.randint(0, size - patch + 1, (n, 2), generator=rng)


def shift_corners(rng: torch.Generator, corners: torch.Tensor, size: int, patch: int, max_shift: int) -> torch.Tensor:
    """Corners [n, 2] of second crops: each of ``corners`` moved by a uniform integer in
    [-max_shift, max_shift] per axis, then clamped into the ``size`` image (a clamped move may be smaller)."""
    moved = corners + torch.randint(-max_shift, max_shift + 1, corners.shape, generator=rng)
    return moved.clamp(0, size - patch)


def cover_table(zones: torch.Tensor, patch: int) -> torch.Tensor:
    """[Z, S - patch + 1, S - patch + 1]: the share of each zone's area (``zones`` [Z, S, S], masks)
    inside the ``patch`` x ``patch`` crop whose top-left corner is at each (top, left)."""
    inside = torch.nn.functional.avg_pool2d(zones[:, None].float(), patch, stride=1)[:, 0] * patch**2
    return inside / zones.flatten(1).sum(1).clamp(min=1e-8)[:, None, None]


def covered_edit_weights(table: torch.Tensor, corners: torch.Tensor, min_cover: float) -> torch.Tensor:
    """[n, Z] weights for :func:`sample_sign_edits`: sign z may be drawn for a patch only where at least
    ``min_cover`` of its zone is inside it (``table`` from :func:`cover_table`, ``corners`` [n, 2] of
    :func:`sample_patches`), with weight 1 / P(z is covered), P over uniform corners, so that a zone few
    patches cover is not starved. A sign no patch covers gets weight 0. On 64-px patches of 128-px
    faces (20,000 draws): a uniform draw over all signs gives an edit its patch shows in 35% of draws
    (the edit terms skip the others), from 0.6% of draws for the forehead to 6.7% for the upper lip;
    these weights give 100%, from 4.4% (forehead) to 14% (glabella) per sign."""
    covered = table >= min_cover  # [Z, T, T]
    propensity = covered.flatten(1).float().mean(1)  # [Z]
    at = covered[:, corners[:, 0], corners[:, 1]].T.float()  # [n, Z]
    return at / propensity.clamp(min=1e-8) * (propensity > 0)


def crop_batch(t: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """Per-sample crops [N, C, patch, patch] of ``t`` [N, C, S, S] at ``corners`` [N, 2]."""
    return torch.stack(
        [t[i, :, top : top + patch, left : left + patch] for i, (top, left) in enumerate(corners.tolist())]
    )


def patch_centres(corners: torch.Tensor, patch: int, size: int) -> torch.Tensor:
    """(x, y) [N, 2] of each patch centre in location-map coordinates (D_Loc's target, Eq. 3)."""
    c = corners.float() + (patch - 1) / 2.0
    xy = -1.0 + 2.0 * c / (size - 1)
    return xy[:, [1, 0]]  # corners are (top, left) -> (x, y)
