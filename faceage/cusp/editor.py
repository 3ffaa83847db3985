"""The CUSP editor: the one place that owns the pipeline, used by the app, the CLI and notebooks.

    photo -> faces (detect, align to the canonical crop) -> mask M, encoders, C's age (cached per face)
          -> edit(target_age, sigma_m, sigma_g) = blur skip (Eq. 2) + decode
          -> "detail" (default): the change from the decode at the face's own age (cached) to this one,
             applied to the photo's own pixels; "replace": the decoded face pasted back -> photo

    from faceage import CUSPEditor
    ed = CUSPEditor.load()                       # shipped weights in assets/
    session = ed.open("photo.jpg")                # detection, alignment, mask, encoders: once per photo
    out = session.edit(age=70, sigma_m=8, sigma_g=4.5)   # full-resolution photo, only faces changed
    session.read_ages                             # [34.2]: each face's age as C reads it
    out = session.edit(70, 8, 4.5, source_age=40)  # when C reads the face wrong
    out = session.edit(70, 8, 4.5, mode="replace") # the generated face itself pasted back
    crops = session.edit_crops(age=70)            # the model's aligned edited crops (for grids)

Edits are deterministic (fixed noise): the same photo and settings give the same image, so a slider
moved back returns the same face. Runs on CUDA when a GPU is present, else on the CPU; ``device="cpu"``
forces the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceage.age.classifier import AgeClassifier
from faceage.checkpoint import load_checkpoint
from faceage.config import from_dict
from faceage.cusp.mask import SIGMA_MAX, blur_skip, check_sigma, cusp_mask
from faceage.cusp.model import CUSPConfig, CUSPGenerator
from faceage.edit.photo_editor import (  # noqa: F401  (check_age, pick_device, to_tensor: re-exported)
    ASSETS,
    DEFAULT_MODE,
    FaceState,
    PhotoEditor,
    PhotoSession,
    check_age,
    check_mode,
    load_weights_into,
    pick_device,
    to_levels,
    to_tensor,
    to_uint8,
    weights_path,
)
from faceage.errors import BadParameterError, CheckpointError
from faceage.provenance import weights_info

DEFAULT_WEIGHTS = ASSETS / "cusp_utkface128.safetensors"
DETAIL_MIN_AGE = 1.0
"""The youngest model age the detail path decodes: ages below 1 (a bin no UTKFace face has) decode a baby whose
change, applied to an adult's photo, is not a face (measured on real photos: ``assets/cusp_utkface128.md``). The
replace path, which shows the model's own face, still decodes them."""

DECODE_BATCH = 16  # faces per decoder pass: bounds the memory of a crowded photo
SIGMA_LIMIT = 4 * SIGMA_MAX
"""Largest sigma accepted: values above SIGMA_MAX are untrained, far above it only blur the face away."""


def decode_age(age: float, mode: str) -> float:
    """The model age an edit at target ``age`` decodes: at least ``DETAIL_MIN_AGE`` on the detail path."""
    return max(age, DETAIL_MIN_AGE) if mode == "detail" else age


def check_controls(age, sigma_m=0.0, sigma_g=0.0) -> tuple[float, float, float]:
    """The validated ``(age, sigma_m, sigma_g)`` of an edit, or a ``BadParameterError`` naming the bad one."""
    age = check_age(age)
    sigmas = check_sigma("sigma_m", sigma_m), check_sigma("sigma_g", sigma_g)
    for name, value in zip(("sigma_m", "sigma_g"), sigmas):
        if value > SIGMA_LIMIT:
            raise BadParameterError(
                f"{name} = {value:g} is far outside the trained range 0..{SIGMA_MAX:g} "
                f"(at most {SIGMA_LIMIT:g} is accepted): use a value from 0 to {SIGMA_MAX:g}"
            )
    return (age, *sigmas)


@dataclass
class CUSPFace(FaceState):
    """Per-face cache: :class:`FaceState` plus its mask M and the encoder outputs (c, F_c, s)."""

    mask: torch.Tensor
    c: torch.Tensor
    f_c: torch.Tensor
    s: torch.Tensor


class Session(PhotoSession):
    """One opened photo: the per-photo work is done once; ``edit`` runs only blur + decoder (and, the first
    time a face's own age or the sigmas change, its reconstruction)."""

    def mask_images(self) -> list[np.ndarray]:
        """M of each face as a float [S,S] array in [0,1] (the CUSP mask, not 1 - M)."""
        return [f.mask[0, 0].cpu().numpy() for f in self.faces]

    def edit_crops(self, age, sigma_m=0.0, sigma_g=0.0) -> list[np.ndarray]:
        """The edited aligned crops (uint8 [S,S,3]) of every face."""
        return [to_uint8(x[0]) for x in self.editor._decode(self.faces, age, sigma_m, sigma_g)]

    def edit(self, age, sigma_m=0.0, sigma_g=0.0, mode: str = DEFAULT_MODE, source_age=None) -> np.ndarray:
        """The full-resolution photo with every opened face aged to ``age``.

        ``mode``: "detail" (default) applies the model's change from the face's own age to ``age`` to the
        photo's pixels; "replace" pastes the generated face. ``source_age``: the faces' own age (a number, or
        one per face) when C's reading (:attr:`read_ages`) is wrong; only "detail" uses it."""
        return self._edit(range(len(self.faces)), age, sigma_m, sigma_g, mode, source_age)

    def edit_face(
        self,
        age,
        sigma_m=0.0,
        sigma_g=0.0,
        face: int = 0,
        mode: str = DEFAULT_MODE,
        source_age=None,
        max_size: int = 512,
        margin: float = 0.0,
    ) -> np.ndarray:
        """Face ``face`` alone edited as :meth:`edit` edits it, seen as :meth:`face_view` shows it (the canonical
        frame at the face's own resolution, at most ``max_size``, widened by ``margin``): what age progressions
        and the app's live face view are made of."""
        i = self._face_number(face)
        return self.face_view(self._edit([i], age, sigma_m, sigma_g, mode, source_age), i, max_size, margin)

    def _edit(self, which, age, sigma_m, sigma_g, mode, source_age) -> np.ndarray:
        """The photo with the faces numbered ``which`` edited (the others as they are)."""
        edits, recons = self.model_edits(age, sigma_m, sigma_g, mode, source_age, which)
        return self.render(edits, recons, [self.faces[i] for i in which])

    def model_edits(
        self, age, sigma_m=0.0, sigma_g=0.0, mode: str = DEFAULT_MODE, source_age=None, which=None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """What :meth:`render` turns into the photo, for the faces numbered ``which`` (default all): their decodes
        at ``age`` and, in "detail" mode, at their own ages (float32 [S,S,3] grey levels; None in "replace")."""
        mode = check_mode(mode)
        age, sigma_m, sigma_g = check_controls(age, sigma_m, sigma_g)
        ages = self.source_ages(source_age)  # checked before any decode
        which = range(len(self.faces)) if which is None else which
        faces = [self.faces[i] for i in which]
        edits = [to_levels(y[0]) for y in self.editor._decode(faces, decode_age(age, mode), sigma_m, sigma_g)]
        if mode == "replace":
            return edits, None
        return edits, [self.reconstruction(self.faces[i], ages[i], sigma_m, sigma_g) for i in which]

    def reconstruction(self, face: CUSPFace, age: float, sigma_m: float, sigma_g: float) -> np.ndarray:
        """``face`` decoded at its own ``age`` with these sigmas (grey levels [S,S,3]): what a detail edit's
        change is measured from; made once per (age, sigmas), then cached on the face."""
        decode = self.editor._decode
        return face.recon((age, sigma_m, sigma_g), lambda: to_levels(decode([face], age, sigma_m, sigma_g)[0][0]))


def load_network(weights: str | Path | None = None) -> tuple[CUSPGenerator, Path, dict]:
    """The aging network T in ``weights`` (default: the shipped assets/ file), on the CPU, with the file's
    path and manifest; :class:`CheckpointError` if it is not CUSP weights."""
    path = weights_path(
        weights,
        DEFAULT_WEIGHTS,
        "CUSP",
        (
            "Train them with `python -m train.train --config train/configs/cusp_128.toml --run runs/cusp128` "
            "and export with `python -m train.export`."
        ),
    )
    tensors, manifest = load_checkpoint(path)
    if not isinstance(manifest.get("net"), dict):
        raise CheckpointError(
            f"{path} has no CUSP network config in its manifest (kind: "
            f"{manifest.get('kind', 'unknown')}): not CUSP weights"
        )
    T = CUSPGenerator(from_dict(CUSPConfig, manifest["net"], where="[net]"))
    load_weights_into(T, tensors, path, "CUSP")
    return T, path, manifest


class CUSPEditor(PhotoEditor):
    """Loads the shipped CUSP weights and the classifier C; opens photos into cached sessions."""

    session_type = Session

    def __init__(self, T: CUSPGenerator, classifier, device: torch.device, weights_info: dict | None = None):
        super().__init__(device, T.cfg.resolution, weights_info, classifier)
        self.T = T.to(device).eval()
        if device.type == "cpu":  # NHWC convolutions: decoder p50 39.6 -> 30.4 ms on 2 cores (docs/benchmarks.md)
            self.T = self.T.to(memory_format=torch.channels_last)

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str | None = None) -> CUSPEditor:
        """Load the EMA aging network from ``weights`` (default: the shipped assets/ file)."""

        T, path, manifest = load_network(weights)
        dev = pick_device(device)
        return cls(T, AgeClassifier.load(), dev, weights_info(path, manifest))

    def _classify(self, x, guided=False):
        return self.C.from_canonical(x, guided=guided)

    @torch.no_grad()
    def prepare(self, x: torch.Tensor, aligned=None) -> CUSPFace:
        """Mask and encoders for one aligned face tensor [1,3,S,S] (the cacheable per-photo work)."""
        mask = cusp_mask(self._classify, x)
        c, f_c, s = self.T.encode(x)
        return CUSPFace(aligned, x, mask=mask, c=c, f_c=f_c, s=s)

    @torch.no_grad()
    def _decode(self, faces: list[FaceState], age, sigma_m, sigma_g) -> list[torch.Tensor]:
        """Every face's edit, ``DECODE_BATCH`` faces per decoder pass (a group photo is one or a few passes)."""
        age, sm, sg = check_controls(age, sigma_m, sigma_g)
        out = []
        with self._lock:
            for i in range(0, len(faces), DECODE_BATCH):
                chunk = faces[i : i + DECODE_BATCH]
                c, f_c, mask, s = (torch.cat([getattr(f, k) for f in chunk]) for k in ("c", "f_c", "mask", "s"))
                a = torch.full((len(chunk),), age, device=self.device)
                out += self.T.decode(c, blur_skip(f_c, mask, sm, sg), s, a, noise="const").split(1)
        return out
