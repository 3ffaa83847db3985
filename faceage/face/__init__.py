"""The face pipeline: detection (YuNet) and landmarks (Face Mesh), alignment into UTKFace's
canonical frame, and paste-back into the original photo.

``faces_in_photo(img, size)`` -> aligned crops; edit them; ``paste_back(photo, crop, aligned)``.

Only alignment is imported with the package; detection (OpenCV, LiteRT), paste-back and the pipeline
load on first use of their names, so training code that needs just the alignment template (AMGAN's
aging maps) runs where they are not installed, such as a lent GPU machine (``tests/test_train_imports.py``).
"""

import importlib

from faceage.face.align import TEMPLATE_68, AlignedFace, align_face, similarity_transform

_LAZY = {"Face": "detect", "detect_faces": "detect", "face_mask": "paste", "paste_back": "paste",
         "faces_in_photo": "pipeline"}

__all__ = [
    "TEMPLATE_68",
    "AlignedFace",
    "Face",
    "align_face",
    "detect_faces",
    "face_mask",
    "faces_in_photo",
    "paste_back",
    "similarity_transform",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"faceage.face.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'faceage.face' has no attribute {name!r}")
