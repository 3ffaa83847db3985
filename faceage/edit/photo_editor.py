"""What every faceage editor shares: the face pipeline around a model, and its per-photo cache.

    photo -> load_image -> faces_in_photo (detect, align to the canonical S x S crop)
          -> editor.prepare(x, aligned) per face      the cacheable per-face work (once per photo), and the
                                                      face's own age as classifier C reads it
          -> the model's edit of each crop            CUSP (faceage.cusp.editor), AMGAN (faceage.amgan.editor)
          -> PhotoSession.render(edits, recons, mode) full-resolution photo:
               "detail" (default): the change from the model's reconstruction of the face at its own age
                                   to its edit, applied to the photo's own pixels (faceage.edit.transfer)
               "replace":          the edited crops themselves pasted back (faceage.edit.paste)

A subclass of :class:`PhotoEditor` sets ``session_type`` and implements ``prepare``; its session
subclass of :class:`PhotoSession` adds the model's controls (``edit``...). The tensor conversions,
the device choice, the age check and the weights lookup live here so both models use one copy.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceage.age.classifier import AgeClassifier, expected_age
from faceage.data.ages import MAX_AGE
from faceage.edit.paste import paste_back, rescaled_frame
from faceage.edit.transfer import FaceTarget
from faceage.errors import BadParameterError, CheckpointError, MissingWeightsError
from faceage.face.align import warp_to_crop, whole_crop
from faceage.face.pipeline import find_faces
from faceage.io import load_image

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MODES = ("detail", "replace")
"""How an edit reaches the photo: "detail" applies the model's change to the photo's own pixels (the face
keeps its detail, expression and colour), "replace" pastes the model's output face (what it generates)."""
DEFAULT_MODE = "detail"
RECONS_KEPT = 8  # reconstructions cached per face (one per source age and setting: a slider move reuses one)


def check_mode(mode) -> str:
    """``mode`` if it is one of MODES, else a BadParameterError naming them."""
    if mode not in MODES:
        raise BadParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_age(age, name: str = "target age") -> float:
    """An age (``name`` says which) must be a finite number in 0..MAX_AGE."""
    try:
        a = float(age)
    except (TypeError, ValueError):
        a = float("nan")
    if isinstance(age, bool) or not math.isfinite(a) or not 0 <= a <= MAX_AGE:
        raise BadParameterError(f"{name} must be a number from 0 to {MAX_AGE:g}, got {age!r}")
    return a


def parse_ages(text) -> float | list[float] | None:
    """The faces' own ages as typed in a text box: empty = as the classifier reads them, one number for every
    face, or numbers separated by commas (one per face, largest first; an empty entry = as read)."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else check_age(text, "the face's own age")
    parts = [p.strip() for p in str(text).split(",")]
    if parts == [""]:
        return None
    try:
        ages = [None if p == "" else check_age(float(p), "the face's own age") for p in parts]
    except ValueError:
        raise BadParameterError(
            f"the face's own age must be a number from 0 to {MAX_AGE:g} (or one per face, "
            f"separated by commas), got {text!r}"
        ) from None
    return ages[0] if len(ages) == 1 else ages


def to_tensor(crop: np.ndarray, device) -> torch.Tensor:
    """uint8 [S,S,3] -> float [1,3,S,S] in [-1,1]."""
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [3,S,S] in [-1,1] -> uint8 [S,S,3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def to_levels(x: torch.Tensor) -> np.ndarray:
    """float [3,S,S] in [-1,1] -> float32 [S,S,3] in grey levels 0..255, not rounded (a change between two
    decodes keeps its sub-level part)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).float().permute(1, 2, 0).cpu().numpy()


def pick_device(device: str | None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU; a device that is not one, or is not here (cuda
    without a GPU, cuda:N past the last GPU, mps without Apple's GPU), is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadParameterError(
            f"--device {device!r} is not a device: use auto, cpu or cuda (cuda:N for GPU N)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadParameterError(f"--device {device} was asked for but no CUDA GPU is available: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadParameterError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
            )
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
class FaceState:
    """What every editor caches per face: the aligned face (None for a bare crop), its tensor, its age as C
    reads it, and its reconstructions at its own age (model settings -> float crop, see ``recon``)."""

    aligned: object  # faceage.face.align.AlignedFace | None
    x: torch.Tensor  # [1, 3, S, S] in [-1, 1]
    read_age: float = field(default=float("nan"), kw_only=True)
    recons: OrderedDict = field(default_factory=OrderedDict, kw_only=True, repr=False)
    target: object = field(default=None, kw_only=True, repr=False)  # faceage.edit.transfer.FaceTarget, made once

    def recon(self, key, make):
        """The cached reconstruction for ``key`` (its source age and settings), made by ``make()`` once."""
        if key in self.recons:
            self.recons.move_to_end(key)
            return self.recons[key]
        made = self.recons[key] = make()
        while len(self.recons) > RECONS_KEPT:
            self.recons.popitem(last=False)
        return made


@dataclass
class PhotoSession:
    """One opened photo and its faces' cached states (:class:`FaceState`)."""

    editor: PhotoEditor
    photo: np.ndarray
    faces: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the user should know about faces turned beyond the training faces (``face.pipeline.note``)."""

    @property
    def read_ages(self) -> list[float]:
        """Each face's age as classifier C reads it (largest face first); C can be 10-20 years off."""
        return [f.read_age for f in self.faces]

    def source_ages(self, source_age=None) -> list[float]:
        """Each face's own age for a detail-preserving edit: ``source_age`` (one number for every face, or one
        per face, None entries meaning "as read"), else the age C reads."""
        if source_age is None or isinstance(source_age, (int, float, np.number)):
            source_age = [source_age] * len(self.faces)
        if (
            isinstance(source_age, (str, bytes))
            or not isinstance(source_age, Sequence)
            or len(source_age) != len(self.faces)
        ):
            n = len(self.faces)
            raise BadParameterError(
                f"the faces' own age must be one age for every face, or one per face: this photo "
                f"has {n} face{'s' if n != 1 else ''} (largest first), got {source_age!r}"
            )
        return [f.read_age if a is None else check_age(a, "source age") for f, a in zip(self.faces, source_age)]

    def how(self, mode: str, source_age=None) -> dict:
        """What an output's metadata records of how it was made: the mode and, in detail mode, the faces' ages."""
        return {"mode": mode, "source_ages": self.source_ages(source_age) if mode == "detail" else None}

    def render(self, edits: list[np.ndarray], recons: list[np.ndarray] | None, faces: list | None = None) -> np.ndarray:
        """The full-resolution photo from each face's edit (float32 [S,S,3] grey levels; ``faces``: whose, default
        all): with ``recons`` (its reconstruction at its own age) the change between them applied to the photo's
        own pixels ("detail"), without them the edited crops pasted back ("replace")."""
        faces = self.faces if faces is None else faces
        if recons is None:
            return self.paste([np.clip(np.round(e), 0, 255).astype(np.uint8) for e in edits], faces)

        out = self.photo
        for face, edit, recon in zip(faces, edits, recons):
            if face.target is None or face.target.size != edit.shape[0]:  # a bare crop: the crop is the frame
                face.target = FaceTarget(self.photo, face.aligned or whole_crop(self.photo), edit.shape[0])
            out = face.target.apply(out, edit, recon)
        return out

    def face_view(self, photo: np.ndarray, face: int = 0, max_size: int = 512, margin: float = 0.0) -> np.ndarray:
        """Face ``face`` of ``photo`` (this session's photo or an edit of it) upright in the canonical frame,
        widened by ``margin`` of its side on every edge, at the face's own resolution in the photo (at least the
        model's, at most ``max_size``): uint8 [S',S',3]."""

        f = self.faces[self._face_number(face)]
        if f.aligned is None:
            return photo
        wide = 1 + 2 * margin
        own = wide * f.aligned.size / np.sqrt(abs(np.linalg.det(f.aligned.matrix[:, :2])))  # view side, photo px
        size = int(min(max(round(own), f.aligned.size), max_size)) // 2 * 2  # even: video encoders want it
        frame = rescaled_frame(f.aligned.matrix, f.aligned.size, size)
        c = (size - 1) / 2  # zoom out about the centre: x -> (x - c) / wide + c
        frame = frame / wide
        frame[:, 2] += c - c / wide
        return warp_to_crop(photo, frame, size)

    def paste(self, crops: list[np.ndarray], faces: list | None = None) -> np.ndarray:
        """The photo with each face's edited crop (uint8 [S,S,3]; ``faces``: whose, default all) blended back in,
        at full resolution."""

        out = self.photo
        for face, crop in zip(self.faces if faces is None else faces, crops):
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

    def __init__(self, device: torch.device, resolution: int, info: dict | None = None, classifier=None):
        self.device = device
        self.resolution = resolution
        self.info = info or {}
        self._lock = threading.Lock()  # one model call at a time (the app serves several users)
        if classifier is None:
            classifier = AgeClassifier.load()
        self.C = classifier.to(device).eval()

    def prepare(self, x: torch.Tensor, aligned=None) -> FaceState:
        """The cached state of one aligned face tensor [1,3,S,S] (``aligned``: its AlignedFace or None)."""
        raise NotImplementedError

    @torch.no_grad()
    def read_age(self, x: torch.Tensor) -> float:
        """The age classifier C reads on an aligned face tensor [1,3,S,S], in years."""

        return round(float(expected_age(self.C.from_canonical(x))[0]), 1)

    def _prepared(self, x: torch.Tensor, aligned=None) -> FaceState:
        state = self.prepare(x, aligned)
        state.read_age = self.read_age(x)
        return state

    def open(self, photo, face_index=None):
        """Detect and align the faces of ``photo`` (path, bytes, PIL, array) and prepare each one.

        ``face_index``: None or "all" for every face, an int for one face (largest first).
        """

        img = load_image(photo)
        found = find_faces(img, self.resolution, face_index=face_index)
        return self.open_aligned(img, found.aligned, found.notes)

    def open_aligned(self, photo: np.ndarray, aligned: Sequence, notes: Sequence[str] = ()):
        """A session on faces already found and aligned at this editor's resolution (``aligned``: AlignedFace
        list, e.g. a video tracker's) in ``photo`` (RGB uint8), each prepared as :meth:`open` prepares them."""

        with self._lock:
            faces = [self._prepared(to_tensor(a.crop, self.device), a) for a in aligned]
        return self.session_type(self, photo, faces, list(notes))

    def open_crop(self, crop):
        """A session on an already aligned, square crop (canonical frame, any side; resized to the model's):
        an array or anything :func:`faceage.io.load_image` reads."""

        crop = load_image(crop)
        if crop.shape[0] != crop.shape[1]:
            raise BadParameterError(
                f"an aligned crop must be square, got {crop.shape[1]}x{crop.shape[0]} pixels: "
                "give a crop in the canonical frame (as `faceage amgan-map` or the app's "
                "canvas shows), or open the photo itself"
            )
        crop = resize_square(crop, self.resolution)
        with self._lock:
            return self.session_type(self, crop, [self._prepared(to_tensor(crop, self.device))])
