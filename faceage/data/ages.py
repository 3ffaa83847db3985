"""Age groups and age normalisation shared by the data pipeline and the models.

Both papers faceage re-implements (CUSP, ECCV 2022, on FFHQ-LS; and AgingMapGAN's
coarse age conditioning) use the ten FFHQ-Lifespan ("FFHQ-LS") age clusters of
Or-El et al. (LATS, ECCV 2020):

    0-2, 3-6, 7-9, 10-14, 15-19, 20-29, 30-39, 40-49, 50-69, 70+

A group ``lo-hi`` holds every real age ``a`` with ``lo <= a < hi + 1``: a child of
2 years 11 months is in ``0-2``. Its centre is the midpoint of that half-open
interval, ``(lo + hi + 1) / 2``; the open-ended ``70+`` group has no midpoint, so
its centre is set to 80.0, the mean age of the 1,372 UTKFace faces aged 70 or
more (median 79).

Continuous ages are mapped to ``[0, 1]`` by dividing by :data:`MAX_AGE` (100)
after clipping to ``[0, MAX_AGE]``: UTKFace has a few faces up to 116 years old,
which all map to 1.0.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

from faceage.errors import BadParameterError

__all__ = [
    "AGE_GROUPS",
    "GROUP_NAMES",
    "MAX_AGE",
    "NUM_GROUPS",
    "OPEN_GROUP_CENTRE",
    "age_to_group",
    "denormalize_age",
    "group_centre",
    "normalize_age",
]

#: ``(lo, hi)`` in whole years, inclusive; ``hi`` is ``None`` for the open-ended last group.
AGE_GROUPS: Final[tuple[tuple[int, int | None], ...]] = (
    (0, 2),
    (3, 6),
    (7, 9),
    (10, 14),
    (15, 19),
    (20, 29),
    (30, 39),
    (40, 49),
    (50, 69),
    (70, None),
)
NUM_GROUPS: Final = len(AGE_GROUPS)
#: Human-readable labels, e.g. ``"20-29"`` and ``"70+"``.
GROUP_NAMES: Final[tuple[str, ...]] = tuple(f"{lo}+" if hi is None else f"{lo}-{hi}" for lo, hi in AGE_GROUPS)
#: Centre given to the open-ended ``70+`` group: the mean UTKFace age over 70 (79.97).
OPEN_GROUP_CENTRE: Final = 80.0
#: Ages are clipped to ``[0, MAX_AGE]`` before normalisation to ``[0, 1]``.
MAX_AGE: Final = 100.0

_T = TypeVar("_T")


def _check_age(age: float) -> float:
    value = float(age)
    if not math.isfinite(value) or value < 0.0:
        raise BadParameterError(f"an age must be a finite number >= 0, got {age!r}")
    return value


def age_to_group(age: float) -> int:
    """Index into :data:`AGE_GROUPS` of the group holding ``age`` (years, ``>= 0``)."""
    value = _check_age(age)
    group = 0
    for index, (lo, _) in enumerate(AGE_GROUPS):
        if value >= lo:
            group = index
    return group


def group_centre(group: int) -> float:
    """Centre age of group ``group``: ``(lo + hi + 1) / 2``, or 80.0 for ``70+``."""
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < NUM_GROUPS:
        raise BadParameterError(f"an age group is an int in [0, {NUM_GROUPS - 1}], got {group!r}")
    lo, hi = AGE_GROUPS[group]
    return OPEN_GROUP_CENTRE if hi is None else (lo + hi + 1) / 2.0


def normalize_age(age: _T) -> _T:
    """Map ages in years to ``[0, 1]``: ``clip(age, 0, MAX_AGE) / MAX_AGE``.

    Works on a Python number (returns ``float``), a NumPy array or a torch tensor
    (returns the same type, elementwise).
    """
    if hasattr(age, "clip"):  # numpy arrays and torch tensors
        return age.clip(0.0, MAX_AGE) / MAX_AGE  # type: ignore[attr-defined,no-any-return]
    return min(max(float(age), 0.0), MAX_AGE) / MAX_AGE  # type: ignore[arg-type,return-value]


def denormalize_age(value: _T) -> _T:
    """Inverse of :func:`normalize_age` on ``[0, 1]``: ``value * MAX_AGE`` (no clipping)."""
    if hasattr(value, "clip"):
        return value * MAX_AGE  # type: ignore[operator,no-any-return]
    return float(value) * MAX_AGE  # type: ignore[arg-type,return-value]
