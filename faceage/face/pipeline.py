"""Photo -> aligned faces: detection, face choice and alignment in one call.

``find_faces`` is what the editor, the CLI and the app call. It turns the expected failures into
typed errors with a message for the user: no face at all, or only faces turned too far to edit
(:class:`~faceage.errors.NoFaceError`), and a face number the photo does not have
(:class:`~faceage.errors.FaceIndexError`). Faces turned too far (``detect.TOO_TURNED``) are left
as they are and named in ``notes``; the others are edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from faceage.errors import FaceIndexError, NoFaceError
from faceage.face.align import AlignedFace, align_face
from faceage.face.detect import TRAINED_TURN, Face, detect_faces

FaceIndex = int | Literal["all"] | None

NO_FACE_MESSAGE = (
    "No face found in the photo: use a photo where a face is clearly visible (at least ~40 px wide, eyes not covered)."
)


@dataclass
class FoundFaces:
    """The chosen faces aligned (largest first) and what the user should know about the others."""

    aligned: list[AlignedFace]
    notes: list[str] = field(default_factory=list)
    """One line per face turned beyond the faces the models were trained on (edited, or not edited when
    turned too far), in words for the user."""


def find_faces(img: np.ndarray, size: int, face_index: FaceIndex = None) -> FoundFaces:
    """Detect the faces of ``img`` and align the chosen ones into S x S canonical crops.

    ``face_index``: ``None`` or ``"all"`` for every face that can be edited, an int ``i >= 0`` for
    the i-th of them counted from the largest (0 = largest). Faces turned ``TOO_TURNED`` degrees or
    more are not edited (a :class:`NoFaceError` when no other face is left); those turned ``TRAINED_TURN``
    or more get a note.
    """
    faces = detect_faces(img)
    if not faces:
        raise NoFaceError(NO_FACE_MESSAGE)
    editable = [f for f in faces if not f.too_turned]
    notes = [note(i, len(faces), f) for i, f in enumerate(faces) if abs(f.yaw) >= TRAINED_TURN]
    if not editable:
        many = len(faces) > 1
        raise NoFaceError(
            f"The face{'s' if many else ''} in the photo {'are' if many else 'is'} turned too far to edit (about "
            f"{min(abs(f.yaw) for f in faces):.0f} degrees from frontal; the models were trained on faces turned at "
            f"most about {TRAINED_TURN:.0f}): use a photo where the face looks more towards the camera."
        )
    return FoundFaces([align_face(img, f.landmarks, size, f.mesh) for f in choose_faces(editable, face_index)], notes)


def note(i: int, n: int, face: Face) -> str:
    """What the user is told about face ``i`` of ``n`` turned beyond the faces the models were trained on."""
    which = f"Face {i + 1} of {n} (largest first)" if n > 1 else "The face"
    if face.too_turned:
        return (
            f"{which} is turned too far to edit (about {abs(face.yaw):.0f} degrees; the models were trained on "
            f"faces turned at most about {TRAINED_TURN:.0f}): it is left as it is."
        )
    return (
        f"{which} is turned about {abs(face.yaw):.0f} degrees, more than the faces the models were trained on "
        f"(at most about {TRAINED_TURN:.0f}): its edit may be weaker or uneven."
    )


def faces_in_photo(img: np.ndarray, size: int, face_index: FaceIndex = None) -> list[AlignedFace]:
    """The aligned faces of :func:`find_faces` (without its notes)."""
    return find_faces(img, size, face_index).aligned


def choose_faces(faces: list[Face], face_index: FaceIndex) -> list[Face]:
    """The faces ``face_index`` selects from a largest-first list (see ``faces_in_photo``)."""
    if face_index is None or face_index == "all":
        return list(faces)
    if isinstance(face_index, bool) or not isinstance(face_index, (int, np.integer)):
        raise FaceIndexError(f"face_index must be None, 'all' or a face number (0 = largest face), got {face_index!r}.")
    if not 0 <= face_index < len(faces):
        raise FaceIndexError(
            f"Face {face_index} was asked for, but the photo has {len(faces)} face"
            f"{'s' if len(faces) != 1 else ''}: use a number from 0 to {len(faces) - 1} "
            "(0 = largest), or 'all'."
        )
    return [faces[int(face_index)]]
