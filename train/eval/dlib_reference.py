"""dlib's 68 points on a UTKFace crop: the reference faceage's canonical frame was measured with.

``faceage/face/template_utkface68.json`` (the alignment template) holds where dlib's HOG detector and
68-point predictor put the landmarks on UTKFace's training crops. faceage now finds faces with YuNet
and the Face Mesh (``faceage/face/detect.py``); the mesh -> 68 mapping is fitted to these reference
points (``train/face/fit_mesh68.py``) so the template keeps its meaning. Needs the ``eval`` extra (dlib).
"""

from __future__ import annotations

import cv2
import numpy as np

from train.eval.metrics import dlib_models

PAD = 0.25
"""Border (fraction of the side) added around a tight crop: dlib's HOG window needs context."""

_models = None


def dlib_landmarks(img: np.ndarray) -> np.ndarray | None:
    """dlib's 68 points ``(68, 2)`` float64 of the face nearest the centre of an RGB crop, or None."""
    global _models
    import dlib

    if _models is None:
        _models = (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(dlib_models() / "shape_predictor_68_face_landmarks.dat")),
        )
    detector, predictor = _models
    pad = int(round(PAD * max(img.shape[:2])))
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    rects = detector(padded, 0)
    if not rects:
        return None
    cx, cy = padded.shape[1] / 2, padded.shape[0] / 2
    rect = min(rects, key=lambda r: np.hypot((r.left() + r.right()) / 2 - cx, (r.top() + r.bottom()) / 2 - cy))
    shape = predictor(padded, rect)
    return np.array([(p.x - pad, p.y - pad) for p in shape.parts()], np.float64)
