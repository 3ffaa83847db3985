"""The CUSP editor: the one place that owns the pipeline, used by the app, the CLI and notebooks.

    photo -> faces (detect, align to the canonical crop) -> mask M and encoders (cached per face)
          -> edit(target_age, sigma_m, sigma_g) = blur skip (Eq. 2) + decode -> paste back -> photo

    from faceage import CUSPEditor
    ed = CUSPEditor.load()                       # shipped weights in assets/
    session = ed.open("photo.jpg")                # detection, alignment, mask, encoders: once per photo
    out = session.edit(age=70, sigma_m=8, sigma_g=4.5)   # full-resolution photo, only faces changed
    crops = session.edit_crops(age=70)            # the aligned edited crops (for strips and grids)

Edits are deterministic (fixed noise): the same photo and settings give the same image, so a slider
moved back returns the same face. CPU by default, CUDA when available and asked for.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceage.checkpoint import load_checkpoint
from faceage.cusp_mask import SIGMA_MAX, blur_skip, check_sigma, cusp_mask
from faceage.errors import BadParameterError, MissingWeightsError
from faceage.models.cusp import MAX_AGE, CUSPConfig, CUSPGenerator

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_WEIGHTS = ASSETS / "cusp_utkface128.safetensors"
SIGMA_LIMIT = 4 * SIGMA_MAX
"""Largest sigma accepted: values above SIGMA_MAX are untrained, far above it only blur the face away."""


def check_age(age) -> float:
    """A target age must be a finite number in 0..MAX_AGE."""
    try:
        a = float(age)
    except (TypeError, ValueError):
        a = float("nan")
    if not math.isfinite(a) or not 0 <= a <= MAX_AGE:
        raise BadParameterError(f"target age must be a number from 0 to {MAX_AGE}, got {age!r}")
    return a


def check_controls(age, sigma_m=0.0, sigma_g=0.0) -> tuple[float, float, float]:
    """The validated ``(age, sigma_m, sigma_g)`` of an edit, or a ``BadParameterError`` naming the bad one."""
    age = check_age(age)
    sigmas = check_sigma("sigma_m", sigma_m), check_sigma("sigma_g", sigma_g)
    for name, value in zip(("sigma_m", "sigma_g"), sigmas):
        if value > SIGMA_LIMIT:
            raise BadParameterError(f"{name} = {value:g} is far outside the trained range 0..{SIGMA_MAX:g} "
                                    f"(at most {SIGMA_LIMIT:g} is accepted): use a value from 0 to {SIGMA_MAX:g}")
    return (age, *sigmas)


def to_tensor(crop: np.ndarray, device) -> torch.Tensor:
    """uint8 [S,S,3] -> float [1,3,S,S] in [-1,1]."""
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [3,S,S] in [-1,1] -> uint8 [S,S,3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadParameterError("--device cuda was asked for but no CUDA GPU is available: use --device cpu")
    return torch.device(device)


@dataclass
class FaceState:
    """Per-face cache: the aligned face, its mask M and the encoder outputs (c, F_c, s)."""

    aligned: object  # faceage.face.align.AlignedFace
    x: torch.Tensor
    mask: torch.Tensor
    c: torch.Tensor
    f_c: torch.Tensor
    s: torch.Tensor


@dataclass
class Session:
    """One opened photo: the per-photo work is done once; ``edit`` runs only blur + decoder."""

    editor: "CUSPEditor"
    photo: np.ndarray
    faces: list[FaceState] = field(default_factory=list)

    def mask_images(self) -> list[np.ndarray]:
        """M of each face as a float [S,S] array in [0,1] (the CUSP mask, not 1 - M)."""
        return [f.mask[0, 0].cpu().numpy() for f in self.faces]

    def edit_crops(self, age, sigma_m=0.0, sigma_g=0.0) -> list[np.ndarray]:
        """The edited aligned crops (uint8 [S,S,3]) of every face."""
        return [to_uint8(x[0]) for x in self.editor._decode(self.faces, age, sigma_m, sigma_g)]

    def edit(self, age, sigma_m=0.0, sigma_g=0.0) -> np.ndarray:
        """The full-resolution photo with every opened face aged to ``age`` and pasted back."""
        from faceage.face.paste import paste_back

        out = self.photo
        for face, crop in zip(self.faces, self.edit_crops(age, sigma_m, sigma_g)):
            out = paste_back(out, crop, face.aligned)
        return out


class CUSPEditor:
    """Loads the shipped CUSP weights and the classifier C; opens photos into cached sessions."""

    def __init__(self, T: CUSPGenerator, classifier, device: torch.device, weights_info: dict | None = None):
        self.T = T.to(device).eval()
        self.C = classifier.to(device).eval()
        self.device = device
        self.resolution = T.cfg.resolution
        self.info = weights_info or {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str | None = None) -> "CUSPEditor":
        """Load the EMA aging network from ``weights`` (default: the shipped assets/ file)."""
        from faceage.models.age_classifier import AgeClassifier

        path = Path(weights) if weights else DEFAULT_WEIGHTS
        if not path.is_file():
            raise MissingWeightsError(
                f"CUSP weights not found at {path}. Train them with `python -m train.train --config "
                "train/configs/cusp_128.toml --run runs/cusp128` and export with `python -m train.export`.")
        tensors, manifest = load_checkpoint(path)
        T = CUSPGenerator(CUSPConfig.from_dict(manifest["net"]))
        T.load_state_dict(tensors)
        dev = pick_device(device)
        return cls(T, AgeClassifier.load(), dev, manifest)

    def _classify(self, x, guided=False):
        return self.C.from_canonical(x, guided=guided)

    @torch.no_grad()
    def prepare(self, x: torch.Tensor, aligned=None) -> FaceState:
        """Mask and encoders for one aligned face tensor [1,3,S,S] (the cacheable per-photo work)."""
        mask = cusp_mask(self._classify, x)
        c, f_c, s = self.T.encode(x)
        return FaceState(aligned, x, mask, c, f_c, s)

    def open(self, photo, face_index=None) -> Session:
        """Detect and align the faces of ``photo`` (path, bytes, PIL, array) and cache their encodings.

        ``face_index``: None or "all" for every face, an int for one face (largest first).
        """
        from faceage.face.pipeline import faces_in_photo
        from faceage.io import load_image

        img = load_image(photo)
        aligned = faces_in_photo(img, self.resolution, face_index=face_index)
        with self._lock:
            faces = [self.prepare(to_tensor(a.crop, self.device), a) for a in aligned]
        return Session(self, img, faces)

    def open_crop(self, crop: np.ndarray) -> Session:
        """A session on an already aligned crop (canonical frame, any size; resized to the model's)."""
        from PIL import Image

        if crop.shape[0] != self.resolution:
            crop = np.asarray(Image.fromarray(crop).resize((self.resolution,) * 2, Image.LANCZOS))
        with self._lock:
            return Session(self, crop, [self.prepare(to_tensor(crop, self.device))])

    @torch.no_grad()
    def _decode(self, faces: list[FaceState], age, sigma_m, sigma_g) -> list[torch.Tensor]:
        age, sm, sg = check_controls(age, sigma_m, sigma_g)
        a = torch.tensor([age], device=self.device)
        out = []
        with self._lock:
            for f in faces:
                skip = blur_skip(f.f_c, f.mask, sm, sg)
                out.append(self.T.decode(f.c, skip, f.s, a, noise="const"))
        return out
