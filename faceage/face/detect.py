"""Face detection: YuNet boxes, checked and landmarked by the Face Mesh, in any of four orientations.

Why these models (measured, ``docs/foundation.md``): dlib's HOG detector, used until 2026-12, found
near-frontal faces of about 80 px and up; it missed turned faces, faces of 40 px in group shots,
grey three-quarter faces and every face in a photo turned by 90 degrees. OpenCV's YuNet
(``assets/face/face_detection_yunet_2023mar.onnx``, MIT, run by ``cv2.FaceDetectorYN``) at a
score threshold of 0.75, with each box kept only if MediaPipe's Face Mesh (``faceage.face.mesh``)
says a face is there, found every upright UTKFace test crop, 99-100% of faces of 40-64 px pasted
into cluttered scenes, and the turned, grey and small faces of the real photos, with no face found
in 24 photos without one. BlazeFace (MediaPipe's own detector) was measured too: as accurate with
tiling, two to four times slower.

Search (all at once, merged by non-maximum suppression):

* the photo at its own size, downscaled to at most ``MAX_SIDE``;
* a copy with a long side of ``LARGE_SIDE`` when the photo is larger (YuNet misses faces that fill
  a large photo);
* a copy upscaled x2 when the photo's long side is at most ``SMALL_SIDE`` (faces of 20-40 px).

Rotated faces (a phone picture with no orientation tag, a head on a pillow): YuNet finds many of
them in the photo as it is, but its keypoints are then wrong, so the mesh tries the box's region in
four quarter turns and keeps the one its face-presence score prefers (``mesh.fit_mesh``). When no face
is found at all, the photo is searched turned by 90, 270 and 180 degrees and the faces found are
mapped back into the photo's own pixels. Either way the landmarks say the face is rotated, and
alignment (a similarity transform) brings it upright for the model and back for the paste.

Each face carries its head turn (``yaw``, from the mesh's depth). Beyond ``TRAINED_TURN`` degrees
(the most UTKFace's faces are turned) the user is told the edit may be weaker; from ``TOO_TURNED``
degrees a face is found but not edited (``pipeline.find_faces`` names it). The detector is not
documented as thread-safe, so calls are serialised by a lock; the models load once, lazily.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from faceage.face.mesh import ASSETS, MeshFit, ShippedModel, fit_mesh

YUNET_FILE = ASSETS / "face_detection_yunet_2023mar.onnx"

SCORE = 0.75
"""YuNet score threshold. Its usual 0.9 dropped real faces scoring 0.87-0.89 (grey three-quarter
faces, faces filling the photo); the mesh's presence check removes what 0.75 lets through."""
PRESENCE = 0.5
"""The Face Mesh's face-presence probability a box needs to count as a face."""
NMS_IOU = 0.3
MAX_SIDE = 2048
LARGE_SIDE = 640
SMALL_SIDE = 1024
TRAINED_TURN = 35.0
"""The most the faces the models were trained on are turned (degrees): UTKFace training crops measure
|yaw| median 5, 99th percentile 31, largest 37 (600 crops, ``docs/foundation.md``). Beyond it, an edit
runs but the user is told it may be weaker or uneven."""
TOO_TURNED = 60.0
"""Head turn (degrees) from which a face is found but not edited."""

_lock = threading.Lock()  # YuNet is not documented as thread-safe: one call at a time


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]
    """``(left, top, right, bottom)``, right/bottom exclusive."""
    landmarks: np.ndarray
    """``(68, 2)`` float32 ``(x, y)`` in the iBUG 300-W order (0-16 jaw, 17-26 brows, 27-35 nose,
    36-47 eyes, 48-67 mouth), mapped from the Face Mesh (``faceage.face.mesh``)."""
    score: float
    """YuNet's confidence (0-1)."""
    yaw: float = 0.0
    """Head turn in degrees (0 frontal, +-90 profile)."""
    mesh: np.ndarray | None = None
    """``(468, 2)`` float32: the Face Mesh's points, which alignment fits."""

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def roll(self) -> float:
        """In-plane rotation in degrees from the outer eye corners (0 upright, +-90 on a side, +-180 upside down)."""
        d = self.landmarks[45] - self.landmarks[36]
        return float(np.degrees(np.arctan2(d[1], d[0])))

    @property
    def too_turned(self) -> bool:
        """Turned ``TOO_TURNED`` degrees or more: found, not edited."""
        return abs(self.yaw) >= TOO_TURNED


def detect_faces(img: np.ndarray) -> list[Face]:
    """Find the faces in an ``(H, W, 3)`` uint8 RGB image, largest first (may be empty)."""
    _check_image(img)
    faces = _find(img)
    for k in (1, 3, 2):  # 90 degrees counter-clockwise, then clockwise, then upside down
        if faces:
            break
        faces = [_unrotate(f, k, img.shape) for f in _find(np.ascontiguousarray(np.rot90(img, k)))]
    return sorted(faces, key=lambda f: f.width * f.height, reverse=True)


# --------------------------------------------------------------------------- internals


def find_meshes(img: np.ndarray) -> list[tuple[np.ndarray, float, MeshFit]]:
    """(box [l, t, r, b], YuNet score, the mesh on it) of every face found upright in ``img``: YuNet at the
    search scales, merged, each box kept if the mesh finds a face in it."""
    long_side = max(img.shape[:2])
    scales = [min(1.0, MAX_SIDE / long_side)]
    if long_side > LARGE_SIDE * 1.1:
        scales.append(LARGE_SIDE / long_side)
    if long_side <= SMALL_SIDE:
        scales.append(2.0)
    out = []
    for box, score, eyes in _nms([d for s in scales for d in _yunet_pass(img, s)]):
        d = eyes[1] - eyes[0]
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        mesh = fit_mesh(
            img, centre, float(max(box[2] - box[0], box[3] - box[1])), float(np.degrees(np.arctan2(d[1], d[0])))
        )
        if mesh.presence >= PRESENCE:
            out.append((box, score, mesh))
    return out


def _find(img: np.ndarray) -> list[Face]:
    return [
        Face(tuple(float(v) for v in box), m.landmarks68, score, m.yaw, m.points[:, :2].copy())
        for box, score, m in find_meshes(img)
    ]


def _yunet_pass(img: np.ndarray, scale: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """(box [l, t, r, b], score, eyes [2, 2]) of one YuNet pass on ``img`` resized by ``scale``."""
    work = (
        img
        if scale == 1.0
        else cv2.resize(
            img, None, fx=scale, fy=scale, interpolation=(cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        )
    )
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
    detector = _detector()
    with _lock:
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = detector.detect(bgr)
    out = []
    for r in rows if rows is not None else []:
        x, y, w, h = r[:4]
        out.append(
            (
                np.array([x, y, x + w, y + h], np.float64) / scale,
                float(r[14]),
                r[4:8].reshape(2, 2).astype(np.float64) / scale,
            )
        )
    return out


def _nms(found: list) -> list:
    """Highest-scoring boxes first; a box overlapping a kept one by IoU > ``NMS_IOU`` is the same face."""
    kept = []
    for box, score, eyes in sorted(found, key=lambda d: -d[1]):
        if all(iou(box, k[0]) <= NMS_IOU for k in kept):
            kept.append((box, score, eyes))
    return kept


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [l, t, r, b] boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _unrotate(face: Face, k: int, shape) -> Face:
    """``face`` found in ``np.rot90(img, k)``, in the pixel coordinates of ``img`` (of ``shape``)."""
    h, w = shape[:2]

    def back(p: np.ndarray) -> np.ndarray:
        x, y = p[:, 0], p[:, 1]
        if k == 1:
            return np.column_stack([w - 1 - y, x])
        if k == 2:
            return np.column_stack([w - 1 - x, h - 1 - y])
        return np.column_stack([y, h - 1 - x])

    left, t, r, b = face.box
    corners = back(np.array([[left, t], [r - 1, b - 1]], np.float64))
    lo, hi = corners.min(0), corners.max(0) + 1
    return Face(
        (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
        back(face.landmarks).astype(np.float32),
        face.score,
        face.yaw,
        back(face.mesh).astype(np.float32),
    )


_detector = ShippedModel(
    YUNET_FILE, lambda path: cv2.FaceDetectorYN.create(str(path), "", (320, 320), SCORE, NMS_IOU, 5000)
).get


def _check_image(img: np.ndarray) -> None:
    """Refuse anything but an (H, W, 3) uint8 array (use faceage.io.load_image first)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise TypeError(
            "detect_faces needs an (H, W, 3) uint8 RGB array; read files with faceage.io.load_image. "
            f"Got {getattr(img, 'shape', type(img).__name__)} {getattr(img, 'dtype', '')}."
        )
