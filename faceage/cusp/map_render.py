"""Per-sign aging rendered by CUSP: an aging map (AgingMapGAN's zones, sliders or a painted canvas) turned
into a per-pixel target age, and each pixel taken from CUSP's decodes at the ages that bracket it.

    editor = CUSPEditor.load(); session = editor.open("photo.jpg")
    maps = MapRenderer(session)
    out = maps.render(age=60, signs={"forehead": 0.9, "nasolabial_left": 0.8}, sigma_m=8, sigma_g=4.5)

Per face and per (sigma_m, sigma_g) the decoder runs once on a ladder of ages (``RUNGS``, one batched pass,
cached with the face's other reconstructions); a new target age adds one decode (its own rung, so a map that
is the age everywhere renders exactly CUSP's own edit); a new sign value or a painted stroke costs an
interpolation and the paste-back, no network pass.

Per-pixel age: the slider's age ``a`` plus the map's departures from the age-only map of the same face,
``a + 100 * sum_c (map_c - base_c)``: a sign at the age's own score changes nothing, a sign raised to 1 asks
its zone for 100 years (clipped to the model's 0..100), and the map's blur (AgingMapGAN's, about 0.08 of the
eye distance) gives smooth zone borders. The result goes through the same paste-back as CUSP's edits: the
detail-preserving path by default (the change against the face's own age, on the photo's pixels).
"""

from __future__ import annotations

import numpy as np
import torch

from faceage.amgan.maps import build_aging_map
from faceage.cusp.editor import check_controls, decode_age
from faceage.cusp.mask import blur_skip
from faceage.cusp.model import MAX_AGE as MODEL_MAX_AGE
from faceage.data.ages import MAX_AGE
from faceage.edit.photo_editor import DEFAULT_MODE, check_age, check_mode, to_levels
from faceage.face.align import template_points

RUNGS = tuple(float(a) for a in (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
"""The ladder's ages. Not 0: model age 0 (a bin no UTKFace face has) decodes a baby whose change applied to
an adult photo is not a face (``assets/cusp_utkface128.md``)."""


class MapRenderer:
    """Renders aging maps through a CUSP :class:`faceage.cusp.editor.Session` (its faces, caches and paste-back)."""

    def __init__(self, session):
        self.session = session
        self._ladders: dict[int, tuple[tuple[float, float], np.ndarray]] = {}  # face -> ((sigmas), decodes)

    def age_map(self, face: int, age, signs=None, painted: torch.Tensor | None = None) -> np.ndarray:
        """The per-pixel target age ``[S, S]`` (years, 0..100) of face ``face`` in the canonical crop: the
        sliders' map (``signs``: scores 0..1 by sign name; absent signs follow the age), or ``painted``
        (a map ``[C, S, S]`` as the canvas gives it) when given."""
        age = check_age(age)
        f = self.session.faces[self.session._face_number(face)]
        size = f.x.shape[-1]
        landmarks = f.aligned.landmarks if f.aligned is not None else _template(size)
        base = build_aging_map(landmarks, size, {}, age)
        target = painted if painted is not None else build_aging_map(landmarks, size, dict(signs or {}), age)
        departure = (target - base).sum(0).numpy()
        return np.clip(age + MAX_AGE * departure, 0.0, MODEL_MAX_AGE).astype(np.float32)

    def render(
        self, age, signs=None, sigma_m=0.0, sigma_g=0.0, painted=None, mode: str = DEFAULT_MODE, source_age=None
    ) -> np.ndarray:
        """The photo with every face rendered from its aging map. ``painted``: a painted map for the first
        face (the others use the sliders'), or None. ``mode`` and ``source_age`` as in CUSP's ``edit``."""

        return self.session.render(*self.model_edits(age, signs, sigma_m, sigma_g, painted, mode, source_age))

    def model_edits(
        self, age, signs=None, sigma_m=0.0, sigma_g=0.0, painted=None, mode: str = DEFAULT_MODE, source_age=None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """What :meth:`render` pastes, as CUSP's ``Session.model_edits``: each face's crop rendered from its map
        and, in "detail" mode, its reconstruction at its own age (None in "replace")."""
        s = self.session
        mode = check_mode(mode)
        age, sigma_m, sigma_g = check_controls(age, sigma_m, sigma_g)
        age = decode_age(age, mode)
        ages = s.source_ages(source_age)
        crops = [
            self._interpolate(i, self.age_map(i, age, signs, painted if i == 0 else None), age, sigma_m, sigma_g)
            for i in range(len(s.faces))
        ]
        if mode == "replace":
            return crops, None
        return crops, [s.reconstruction(f, a, sigma_m, sigma_g) for f, a in zip(s.faces, ages)]

    def ladder(self, face: int, sigma_m: float, sigma_g: float) -> np.ndarray:
        """Face ``face``'s decodes at ``RUNGS`` (grey levels ``[K, S, S, 3]`` float32): made once per sigma
        setting, kept until the sigmas change."""
        held = self._ladders.get(face)
        if held is None or held[0] != (sigma_m, sigma_g):
            held = self._ladders[face] = (
                (sigma_m, sigma_g),
                self._decode_ages(self.session.faces[face], RUNGS, sigma_m, sigma_g),
            )
        return held[1]

    def _interpolate(self, face: int, ages: np.ndarray, age: float, sigma_m, sigma_g) -> np.ndarray:
        """Each pixel from the two decodes whose ages bracket its age (the ladder plus the slider's age)."""
        f = self.session.faces[face]
        rungs = np.array(RUNGS)
        decodes = self.ladder(face, sigma_m, sigma_g)
        if age not in RUNGS:
            own = f.recon(("rung", age, sigma_m, sigma_g), lambda: self._decode_ages(f, (age,), sigma_m, sigma_g))
            at = int(np.searchsorted(rungs, age))
            rungs = np.insert(rungs, at, age)
            decodes = np.insert(decodes, at, own[0], axis=0)
        hi = np.clip(np.searchsorted(rungs, ages, side="right"), 1, len(rungs) - 1)
        lo = hi - 1
        t = np.clip((ages - rungs[lo]) / (rungs[hi] - rungs[lo]), 0.0, 1.0)[..., None]
        rows, cols = np.indices(ages.shape)
        return decodes[lo, rows, cols] * (1 - t) + decodes[hi, rows, cols] * t

    def _decode_ages(self, f, ages, sigma_m, sigma_g) -> np.ndarray:
        """One face decoded at several ages in one batched pass: grey levels ``[K, S, S, 3]`` float32."""

        ed = self.session.editor
        k = len(ages)
        with torch.no_grad(), ed._lock:
            skip = blur_skip(f.f_c, f.mask, sigma_m, sigma_g)
            out = ed.T.decode(
                f.c.expand(k, *f.c.shape[1:]),
                skip.expand(k, *skip.shape[1:]),
                f.s.expand(k, -1),
                torch.tensor(ages, dtype=torch.float32, device=ed.device),
                noise="const",
            )
        return np.stack([to_levels(y) for y in out])


def _template(size: int) -> np.ndarray:

    return template_points(size).astype(np.float32)
