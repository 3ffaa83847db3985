"""The corpus of bad and odd inputs for the reliability tests, built on the fly (no committed binaries).

``FILES``: photo files, each made from the test face photo (``face_photo`` in conftest): the bad ones
with the typed error and the two message fragments (what was wrong, what to do) every interface must
give, the valid odd ones with the upright RGB image they must load as. ``PARAMETERS``: bad control
values (ages, sigmas, face numbers) for the test face photo. ``docs/reliability.md`` tabulates both.
"""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from faceage.errors import BadImageError, BadParameterError, FaceIndexError, NoFaceError
from faceage.io import MAX_BYTES, MAX_PIXELS

BORDER = 16
"""Width of the transparent frame of the alpha PNG."""


# --------------------------------------------------------------------------- encoders


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    """``img`` saved by PIL as ``fmt``, in memory."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def handmade_png(width: int, height: int, rows, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG written by hand: the header says ``width`` x ``height``; ``rows`` are raw scanlines.

    Rows are compressed one at a time, so a huge image of a flat colour costs little memory; with
    fewer rows than ``height`` the header lies (a decompression bomb's header costs ~100 bytes).
    """
    z = zlib.compressobj()
    idat = b"".join(z.compress(b"\x00" + row) for row in rows) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A ~100-byte PNG whose header claims ``width`` x ``height`` 8-bit RGB pixels."""
    return handmade_png(width, height, [])


def huge_png() -> bytes:
    """A real, fully decodable flat-grey PNG just over ``MAX_PIXELS`` (~150 kB on disk)."""
    width = 8000
    height = MAX_PIXELS // width + 100
    return handmade_png(width, height, itertools.repeat(bytes([128]) * (3 * width), height))


def png_16bit(rgb: np.ndarray) -> bytes:
    """An RGB PNG with 16 bits per channel (each 8-bit value v stored as v * 257)."""
    wide = rgb.astype(">u2") * 257
    return handmade_png(rgb.shape[1], rgb.shape[0], (row.tobytes() for row in wide), bit_depth=16)


def truncated_jpeg(rgb: np.ndarray) -> bytes:
    """The first half of a JPEG."""
    data = encode(Image.fromarray(rgb), "JPEG", quality=90)
    return data[: len(data) // 2]


def with_transparent_border(rgb: np.ndarray) -> np.ndarray:
    """RGBA: opaque inside, a transparent frame of ``BORDER`` px whose colour is junk (black)."""
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:BORDER], rgba[-BORDER:], rgba[:, :BORDER], rgba[:, -BORDER:] = 0, 0, 0, 0
    return rgba


def white_border(rgb: np.ndarray) -> np.ndarray:
    """What ``with_transparent_border`` must load as: the frame composited on white."""
    out = rgb.copy()
    out[:BORDER], out[-BORDER:], out[:, :BORDER], out[:, -BORDER:] = 255, 255, 255, 255
    return out


def exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG stored lying on its side with EXIF Orientation 6 ("rotate 90 clockwise to display")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(np.rot90(rgb)), "JPEG", quality=95, subsampling=0, exif=exif.tobytes())


def animated_gif(rgb: np.ndarray) -> bytes:
    """Two frames: the photo, then its negative (only the first may be used)."""
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def gray(rgb: np.ndarray) -> np.ndarray:
    """The photo in 8-bit grey, as three equal channels."""
    return np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, axis=2)


def no_face(rgb: np.ndarray) -> np.ndarray:
    """A photo-sized colour pattern with nothing like a face in it."""
    yy, xx = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    return np.stack([yy % 256, xx % 256, (xx + yy) % 256], axis=2).astype(np.uint8)


def many_faces(rgb: np.ndarray) -> np.ndarray:
    """The photo tiled 2 x 2: four faces (each face costs ~0.3 s to open on a CPU, so not more)."""
    return np.tile(rgb, (2, 2, 1))


def cut_by_border(rgb: np.ndarray) -> np.ndarray:
    """The photo with its left 250 columns cut off: about a third of the face is outside."""
    return np.ascontiguousarray(rgb[:, 250:])


def png(rgb: np.ndarray, mode: str | None = None) -> bytes:
    """``rgb`` as a PNG (converted to ``mode`` first if given)."""
    img = Image.fromarray(rgb)
    return encode(img.convert(mode) if mode else img, "PNG")


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class FileCase:
    """A photo file made from the test face photo, and what every interface must do with it."""

    name: str
    suffix: str
    make: Callable[[np.ndarray], bytes]
    """From the face photo to the file's bytes."""
    error: type | None = None
    """The ``FaceAgeError`` subclass expected; None for a valid photo that must be edited."""
    words: tuple[str, ...] = ()
    """Fragments of the message, lower case: what was wrong, then what to do."""
    expected: Callable[[np.ndarray], np.ndarray] | None = None
    """Valid photos: from the face photo to the upright RGB image the file must load as."""
    tol: float = 0.0
    """Valid photos: mean absolute difference allowed from ``expected`` (lossy formats)."""
    faces: int = 1
    """Valid photos: how many faces are found and edited."""
    size: int = 0
    """If set, the file is extended (sparsely, with zeros) to this many bytes."""

    def write(self, face_photo: np.ndarray, folder: Path) -> Path:
        """Write the file into ``folder`` and return its path."""
        path = Path(folder) / f"{self.name}{self.suffix}"
        path.write_bytes(self.make(face_photo))
        if self.size:
            with open(path, "r+b") as f:
                f.truncate(self.size)
        return path


FILES: list[FileCase] = [
    FileCase("0-byte", ".jpg", lambda f: b"", BadImageError, ("empty", "pick the file again")),
    FileCase("truncated-jpeg", ".jpg", truncated_jpeg, BadImageError, ("truncated", "upload the original")),
    FileCase(
        "not-an-image",
        ".jpg",
        lambda f: b"Dear reader, this is a letter, not a photo.\n" * 40,
        BadImageError,
        ("not an image", "use a jpeg, png"),
    ),
    FileCase("decompression-bomb", ".png", lambda f: bomb_png(), BadImageError, ("too large", "downscale")),
    FileCase("huge-photo", ".png", lambda f: huge_png(), BadImageError, ("too large", "downscale")),
    FileCase(
        "over-max-bytes",
        ".jpg",
        lambda f: encode(Image.fromarray(f), "JPEG"),
        BadImageError,
        ("too big", "downscale"),
        size=MAX_BYTES + 5 * 2**20,
    ),
    FileCase("8x8", ".png", lambda f: png(f[:8, :8]), BadImageError, ("too small", "use a larger photo")),
    FileCase("no-face", ".png", lambda f: png(no_face(f)), NoFaceError, ("no face", "face is clearly visible")),
    FileCase(
        "cmyk-jpeg",
        ".jpg",
        lambda f: encode(Image.fromarray(f).convert("CMYK"), "JPEG", quality=95),
        expected=lambda f: f,
        tol=3.0,
    ),
    FileCase("png-16bit", ".png", png_16bit, expected=lambda f: f),
    FileCase("png-alpha", ".png", lambda f: png(with_transparent_border(f)), expected=white_border),
    FileCase(
        "palette-gif", ".gif", lambda f: encode(Image.fromarray(f).quantize(256), "GIF"), expected=lambda f: f, tol=6.0
    ),
    FileCase("animated-gif", ".gif", animated_gif, expected=lambda f: f, tol=6.0),
    FileCase("exif-rotated", ".jpg", exif_rotated_jpeg, expected=lambda f: f, tol=4.0),
    FileCase("grayscale", ".png", lambda f: png(f, "L"), expected=gray),
    FileCase("many-faces", ".png", lambda f: png(many_faces(f)), expected=many_faces, faces=4),
    FileCase("face-cut-by-border", ".png", lambda f: png(cut_by_border(f)), expected=cut_by_border),
]

BAD_FILES = [c for c in FILES if c.error]
VALID_FILES = [c for c in FILES if not c.error]


@dataclass(frozen=True)
class ParameterCase:
    """Control values for the (one-face) test photo, at least one of them bad."""

    name: str
    age: object = 70
    sigma_m: object = 8.0
    sigma_g: object = 4.5
    face: int | None = None
    """None: every face."""
    error: type = BadParameterError
    word: str = ""
    """Lower-case fragment naming the bad control in every interface's message."""


PARAMETERS: list[ParameterCase] = [
    ParameterCase("age-nan", age=float("nan"), word="age"),
    ParameterCase("age-inf", age=float("inf"), word="age"),
    ParameterCase("age-negative", age=-5, word="age"),
    ParameterCase("age-150", age=150, word="age"),
    ParameterCase("age-text", age="old", word="age"),
    ParameterCase("sigma_m-nan", sigma_m=float("nan"), word="sigma_m"),
    ParameterCase("sigma_m-negative", sigma_m=-1, word="sigma_m"),
    ParameterCase("sigma_m-text", sigma_m="blurry", word="sigma_m"),
    ParameterCase("sigma_g-inf", sigma_g=float("inf"), word="sigma_g"),
    ParameterCase("sigma_g-50", sigma_g=50, word="sigma_g"),
    ParameterCase("face-3-of-1", face=3, error=FaceIndexError, word="face 3"),
]
