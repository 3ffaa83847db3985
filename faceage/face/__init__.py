"""The face pipeline: detection and landmarks (dlib), alignment into UTKFace's canonical
frame, and paste-back into the original photo.

``faces_in_photo(img, size)`` -> aligned crops; edit them; ``paste_back(photo, crop, aligned)``.
"""

from faceage.face.align import TEMPLATE_68, AlignedFace, align_face, similarity_transform
from faceage.face.detect import Face, detect_faces
from faceage.face.paste import face_mask, paste_back
from faceage.face.pipeline import faces_in_photo

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
