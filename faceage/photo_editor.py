"""What every faceage editor shares: the face pipeline around a model, and its per-photo cache.

    photo -> load_image -> faces_in_photo (detect, align to the canonical S x S crop)
          -> editor.prepare(x, aligned) per face      the cacheable per-face work (once per photo)
          -> the model's edit of each crop            CUSP (faceage.editor), AMGAN (faceage.amgan_editor)
          -> PhotoSession.paste(crops)                every edited crop pasted back: full-resolution photo

A subclass of :class:`PhotoEditor` sets ``session_type`` and implements ``prepare``; its session
subclass of :class:`PhotoSession` adds the model's controls (``edit``...). The tensor conversions,
the device choice, the age check and the weights lookup live here so both models use one copy.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceage.data.ages import MAX_AGE
from faceage.errors import BadParameterError, CheckpointError, MissingWeightsError

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def check_age(age) -> float:
    """A target age must be a finite number in 0..MAX_AGE."""
    try:
        a = float(age)
    except (TypeError, ValueError):
        a = float("nan")
    if not math.isfinite(a) or not 0 <= a <= MAX_AGE:
        raise BadParameterError(f"target age must be a number from 0 to {MAX_AGE:g}, got {age!r}")
    return a


def to_tensor(crop: np.ndarray, device) -> torch.Tensor:
    """uint8 [S,S,3] -> float [1,3,S,S] in [-1,1]."""
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [3,S,S] in [-1,1] -> uint8 [S,S,3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def pick_device(device: str | None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU; a device that is not one, or is not here (cuda
    without a GPU, cuda:N past the last GPU, mps without Apple's GPU), is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadParameterError(f"--device {device!r} is not a device: use auto, cpu or cuda (cuda:N for GPU N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadParameterError(f"--device {device} was asked for but no CUDA GPU is available: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadParameterError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                                    "numbered from 0")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BadParameterError(f"--device {device}: no Apple GPU (MPS) is available here: use --device cpu")
    elif dev.type not in ("cpu", "mps"):
        raise BadParameterError(f"--device {device}: faceage runs on cpu, cuda or mps")
    return dev


def load_weights_into(net: torch.nn.Module, tensors: dict, path: Path, model: str) -> None:
    """``net.load_state_dict(tensors)``, or a CheckpointError naming ``path`` when the file's tensors do not
    fit the network its own manifest describes (a damaged or hand-edited file)."""
    try:
        net.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its {model} config: {str(e).splitlines()[0]}") from None


def weights_path(weights, default: Path, model: str, how_to_make: str) -> Path:
    """``weights`` (or the shipped ``default``) as a Path, or a MissingWeightsError saying how to make it."""
    path = Path(weights) if weights else default
    if not path.is_file():
        raise MissingWeightsError(f"{model} weights not found at {path}. {how_to_make}")
    return path


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """A square canonical crop at another side (the frame is the same at any resolution)."""
    from PIL import Image

    if img.shape[0] == size:
        return img
    return np.array(Image.fromarray(img).resize((size, size), Image.LANCZOS))


@dataclass
class PhotoSession:
    """One opened photo and its faces' cached states (each has ``.aligned``, None for a bare crop)."""

    editor: "PhotoEditor"
    photo: np.ndarray
    faces: list = field(default_factory=list)

    def paste(self, crops: list[np.ndarray]) -> np.ndarray:
        """The photo with every face's edited crop (uint8 [S,S,3]) blended back in, at full resolution."""
        from faceage.face.paste import paste_back

        out = self.photo
        for face, crop in zip(self.faces, crops):
            if face.aligned is None:  # opened with open_crop: the crop is the photo
                out = resize_square(crop, out.shape[0])
            else:
                out = paste_back(out, crop, face.aligned)
        return out

    def _face_number(self, face) -> int:
        """``face`` checked as the number of one of this session's faces (0 = the first opened)."""
        if isinstance(face, bool) or not isinstance(face, (int, np.integer)) or not 0 <= face < len(self.faces):
            raise BadParameterError(f"face must be a number from 0 to {len(self.faces) - 1}, got {face!r}")
        return int(face)


class PhotoEditor:
    """Opens photos into sessions: detection and alignment at ``resolution``, then ``prepare`` per face."""

    session_type = PhotoSession

    def __init__(self, device: torch.device, resolution: int, info: dict | None = None):
        self.device = device
        self.resolution = resolution
        self.info = info or {}
        self._lock = threading.Lock()  # one model call at a time (the app serves several users)

    def prepare(self, x: torch.Tensor, aligned=None):
        """The cached state of one aligned face tensor [1,3,S,S] (``aligned``: its AlignedFace or None)."""
        raise NotImplementedError

    def open(self, photo, face_index=None):
        """Detect and align the faces of ``photo`` (path, bytes, PIL, array) and prepare each one.

        ``face_index``: None or "all" for every face, an int for one face (largest first).
        """
        from faceage.face.pipeline import faces_in_photo
        from faceage.io import load_image

        img = load_image(photo)
        aligned = faces_in_photo(img, self.resolution, face_index=face_index)
        with self._lock:
            faces = [self.prepare(to_tensor(a.crop, self.device), a) for a in aligned]
        return self.session_type(self, img, faces)

    def open_crop(self, crop):
        """A session on an already aligned, square crop (canonical frame, any side; resized to the model's):
        an array or anything :func:`faceage.io.load_image` reads."""
        from faceage.io import load_image

        crop = load_image(crop)
        if crop.shape[0] != crop.shape[1]:
            raise BadParameterError(f"an aligned crop must be square, got {crop.shape[1]}x{crop.shape[0]} pixels: "
                                    "give a crop in the canonical frame (as `faceage amgan-map` or the app's "
                                    "canvas shows), or open the photo itself")
        crop = resize_square(crop, self.resolution)
        with self._lock:
            return self.session_type(self, crop, [self.prepare(to_tensor(crop, self.device))])
