"""Typed errors of faceage: every message says what was wrong and what to do.

The app turns them into ``gr.Error``, the CLI into one line and a non-zero exit code.
"""


class FaceAgeError(Exception):
    """Base class of all errors faceage raises on purpose (bad input, missing weights...)."""


class BadImageError(FaceAgeError, ValueError):
    """The input is not a readable image, or is outside the documented limits."""


class NoFaceError(FaceAgeError):
    """No face was found in the photo."""


class FaceIndexError(FaceAgeError, IndexError):
    """A face index was asked for that the photo does not have."""


class BadParameterError(FaceAgeError, ValueError):
    """A control value (age, sigma, sign score, painted map) is invalid."""


class MissingWeightsError(FaceAgeError, FileNotFoundError):
    """A weights file the model needs is not in ``assets/``."""


class CheckpointError(FaceAgeError):
    """A checkpoint is corrupt, truncated or of the wrong kind."""


class BadVideoError(FaceAgeError, ValueError):
    """The input is not a readable video, or is outside the documented limits (``faceage.video.io``)."""


class CancelledError(FaceAgeError):
    """A long job (a video edit) was cancelled by its caller; nothing was written."""
