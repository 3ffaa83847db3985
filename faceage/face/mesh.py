"""Dense face landmarks: MediaPipe's 468-point Face Mesh, mapped onto the 68-point frame.

The mesh (``assets/face/face_landmark.tflite``, Apache-2.0, run by LiteRT on the CPU, ~2 ms a
face) predicts 468 points (x, y and a relative depth z) on a face turned well beyond where
dlib's 68-point predictor puts the jaw line on the background, plus a face-presence score
that rejects a detector's false positives. faceage's canonical frame stays the 68-point
template (``align.TEMPLATE_68``, dlib's layout): each of the 68 points is a fixed weighted sum
of a few mesh points, fitted on UTKFace training crops against dlib's own points
(``train/face/fit_mesh68.py`` writes ``mesh68_utkface.json``; its residual is in the file and in
``docs/foundation.md``).

Recipe (MediaPipe's published one): a square region around the face, side ``1.5 x`` the
detector's box, rotated so the eyes are level, resampled to 192 x 192 in [0, 1]; then a second
pass on the region ``1.25 x`` the first pass's point cloud, rotated by its own eye corners, which
recentres the face whatever the detector's box was.

Head turn (yaw) comes from the mesh's depth: the angle of the line between the outer eye corners
out of the image plane, ``atan2(dz, dx)``. On UTKFace's frontal crops it is within a few degrees
of 0; on the real turned faces of ``train/real_photos`` 30-70 degrees.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceage.errors import MissingWeightsError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "face"
MESH_FILE = ASSETS / "face_landmark.tflite"
MAPPING_FILE = Path(__file__).with_name("mesh68_utkface.json")
"""Written by ``train/face/fit_mesh68.py``: the mesh -> 68 mapping, and the mesh's own template in the canonical
frame (its mean on UTKFace training crops) with the mesh points alignment fits (the steadiest ones)."""

INPUT = 192
"""The mesh's input side (px)."""
FIRST_SCALE, SECOND_SCALE = 1.5, 1.25
"""Region side over the detector's box (first pass) and over the point cloud (second pass)."""
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
"""Mesh indices of the outer eye corners (image left and image right on an upright face)."""
NOSE_TIP = 1
QUARTER_TURNS = (0.0, 90.0, 180.0, 270.0)
FLIP_X = 192.0
"""x of a point in the mirrored input is ``FLIP_X - x`` (the mesh's coordinates run from the input's left edge)."""

_lock = threading.Lock()  # one mesh call at a time (one interpreter)


@dataclass(frozen=True)
class MeshFit:
    """The mesh on one face, in the pixel coordinates of the image it ran on."""

    points: np.ndarray
    """``(468, 3)`` float32: x, y in image pixels, z relative depth in the same scale."""
    presence: float
    """The mesh's face-presence probability (0-1) on the detector's region (the first pass)."""

    @property
    def landmarks68(self) -> np.ndarray:
        """The 68 points of dlib's layout (``(68, 2)`` float32), from the fitted mesh -> 68 mapping."""
        index, weight = _mapping()
        return (self.points[index, :2] * weight[..., None]).sum(1).astype(np.float32)

    @property
    def yaw(self) -> float:
        """Head turn in degrees (0 frontal, +-90 profile), from the depth of the outer eye corners."""
        d = self.points[LEFT_EYE_OUTER] - self.points[RIGHT_EYE_OUTER]
        return float(np.degrees(np.arctan2(d[2], np.hypot(d[0], d[1]))))


def fit_mesh(img: np.ndarray, centre, side: float, angle: float) -> MeshFit:
    """Run the two mesh passes on the face whose region is ``centre`` (x, y), ``side`` px and rolled by about
    ``angle`` degrees (the eye line's angle in the image, as the detector says) in an ``(H, W, 3)`` uint8 RGB
    image. The detector's keypoints are wrong on a face lying sideways or upside down, so the region is first
    tried at ``angle`` + 0, 90, 180 and 270 degrees and the mesh goes where its face-presence score is highest
    (the upright quarter turn on all 35 faces of 8 real photos turned four ways)."""
    presences = [_presence(img, centre, side * FIRST_SCALE, angle + q) for q in QUARTER_TURNS]
    angle += QUARTER_TURNS[int(np.argmax(presences))]
    points, presence = _run(img, centre, side * FIRST_SCALE, angle)
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    d = points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]
    points, _ = _run(
        img, (lo + hi) / 2, float((hi - lo).max()) * SECOND_SCALE, float(np.degrees(np.arctan2(d[1], d[0])))
    )
    return MeshFit(points, presence)


def follow_mesh(img: np.ndarray, points: np.ndarray) -> MeshFit:
    """The mesh on the face whose previous points (``(468, 2+)``, e.g. one video frame earlier) are ``points``:
    one pass on the region they span (the second pass of :func:`fit_mesh`), with its face-presence score.
    What video tracking runs between detections (``faceage.video.track``)."""
    pts = np.asarray(points, np.float64)[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    d = pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]
    return MeshFit(
        *_run(img, (lo + hi) / 2, float((hi - lo).max()) * SECOND_SCALE, float(np.degrees(np.arctan2(d[1], d[0]))))
    )


def _region(img: np.ndarray, centre, side: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's input (the rotated square region, [0, 1]) and the image -> input map."""
    cx, cy = float(centre[0]), float(centre[1])
    m = cv2.getRotationMatrix2D((cx, cy), angle, INPUT / max(side, 1.0))
    m[:, 2] += (INPUT / 2 - cx, INPUT / 2 - cy)
    roi = cv2.warpAffine(
        img,
        m,
        (INPUT, INPUT),
        flags=cv2.INTER_AREA if side > 2 * INPUT else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return roi.astype(np.float32) / 255.0, m


def _presence(img: np.ndarray, centre, side: float, angle: float) -> float:
    """The mesh's face-presence logit on one region."""
    return _interpreter()(_region(img, centre, side, angle)[0])[1]


def _run(img: np.ndarray, centre, side: float, angle: float) -> tuple[np.ndarray, float]:
    """One mesh pass on the rotated square region; points mapped back to image pixels."""
    x, m = _region(img, centre, side, angle)
    raw, logit = _interpreter()(x)
    pts = raw.reshape(468, 3).astype(np.float64)
    mirror = _fitted().get("mirror")  # absent only while train/face/fit_mesh68.py makes the first fit
    if mirror is not None:  # the mesh of the mirrored region, mirrored back and averaged: half the jitter
        flipped, _ = _interpreter()(np.ascontiguousarray(x[:, ::-1]))  # presence: the unmirrored pass's (measured)
        pts = (pts + flipped.reshape(468, 3).astype(np.float64)[mirror] * [-1, 1, 1] + [FLIP_X, 0, 0]) / 2
    back = cv2.invertAffineTransform(m)
    xy = pts[:, :2] @ back[:, :2].T + back[:, 2]
    z = pts[:, 2] * np.hypot(*back[0, :2])  # depth in the image's pixel scale
    presence = float(1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))))
    return np.column_stack([xy, z]).astype(np.float32), presence


@contextmanager
def quiet_native_stderr():
    """Silence what native libraries print while loading a model (OpenCV's "Targets are not supported"
    warning, LiteRT's "Created TensorFlow Lite XNNPACK delegate"): a CLI's errors stay one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Interpreter:
    """The LiteRT interpreter of the mesh, outputs picked by shape (their names differ between exports)."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=2)
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]["index"]
        outs = self.it.get_output_details()
        self.points = next(o["index"] for o in outs if o["shape"][-1] == 1404)
        self.flag = next(o["index"] for o in outs if o["shape"][-1] == 1)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        with _lock:  # one interpreter, one call at a time
            self.it.set_tensor(self.input, x[None])
            self.it.invoke()
            return self.it.get_tensor(self.points).copy(), float(self.it.get_tensor(self.flag).ravel()[0])


class ShippedModel:
    """A model file that ships in ``assets/``, loaded by ``make(path)`` once, on first use (thread-safe, with
    what native code prints while loading silenced), or a :class:`MissingWeightsError` naming the file."""

    def __init__(self, path: Path, make):
        self.path, self.make, self.model, self.lock = path, make, None, threading.Lock()

    def get(self):
        if self.model is None:
            with self.lock:
                if self.model is None:
                    if not self.path.is_file():
                        raise MissingWeightsError(f"{self.path} is missing: it ships with faceage (git checkout it).")
                    with quiet_native_stderr():
                        self.model = self.make(self.path)
        return self.model


_interpreter = ShippedModel(MESH_FILE, _Interpreter).get


_record: dict | None = None


def _fitted() -> dict:
    global _record
    if _record is None:
        _record = json.loads(MAPPING_FILE.read_text(encoding="utf-8"))
    return _record


def _mapping() -> tuple[np.ndarray, np.ndarray]:
    """(index [68, K] int, weight [68, K] float32) of the mesh -> 68 mapping."""
    r = _fitted()
    return np.array(r["index"], np.int64), np.array(r["weight"], np.float32)


def mesh_template() -> tuple[np.ndarray, np.ndarray]:
    """(the mesh's mean points [468, 2] in the 200-px canonical frame, the indices alignment fits)."""
    r = _fitted()
    return np.array(r["template"], np.float64), np.array(r["align_points"], np.int64)
