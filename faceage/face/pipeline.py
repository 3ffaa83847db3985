"""Photo -> aligned faces: detection, face choice and alignment in one call.

``faces_in_photo`` is what the editor, the CLI and the app call. It turns the two
expected failures into typed errors with a message for the user: no face at all
(:class:`~faceage.errors.NoFaceError`) and a face number the photo does not have
(:class:`~faceage.errors.FaceIndexError`).
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np

from faceage.errors import FaceIndexError, NoFaceError
from faceage.face.align import AlignedFace, align_face
from faceage.face.detect import Face, detect_faces

FaceIndex = Union[None, int, Literal["all"]]

NO_FACE_MESSAGE = (
    "No face found in the photo: use a photo where a face is clearly visible, frontal, "
    "at least ~64 px wide."
)


def faces_in_photo(img: np.ndarray, size: int, face_index: FaceIndex = None) -> list[AlignedFace]:
    """Detect the faces of ``img`` and align the chosen ones into S x S canonical crops.

    ``face_index``: ``None`` or ``"all"`` for every face, an int ``i >= 0`` for the i-th
    face counted from the largest (0 = largest). Returns them largest first.
    """
    faces = detect_faces(img)
    if not faces:
        raise NoFaceError(NO_FACE_MESSAGE)
    return [align_face(img, face.landmarks, size) for face in choose_faces(faces, face_index)]


def choose_faces(faces: list[Face], face_index: FaceIndex) -> list[Face]:
    """The faces ``face_index`` selects from a largest-first list (see ``faces_in_photo``)."""
    if face_index is None or face_index == "all":
        return list(faces)
    if isinstance(face_index, bool) or not isinstance(face_index, (int, np.integer)):
        raise FaceIndexError(
            f"face_index must be None, 'all' or a face number (0 = largest face), got {face_index!r}."
        )
    if not 0 <= face_index < len(faces):
        raise FaceIndexError(
            f"Face {face_index} was asked for, but the photo has {len(faces)} face"
            f"{'s' if len(faces) != 1 else ''}: use a number from 0 to {len(faces) - 1} "
            "(0 = largest), or 'all'."
        )
    return [faces[int(face_index)]]
