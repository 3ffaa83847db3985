"""Image input and output for faceage: one safe way in, one atomic way out.

``load_image`` accepts whatever a user, the CLI or the Gradio app may hand over (a path,
raw bytes, an open file, a PIL image or a numpy array) and always returns the same thing:
an ``(H, W, 3)`` ``uint8`` RGB array, upright (EXIF orientation applied), first frame only.
Everything the rest of the code base would otherwise have to worry about is settled here:

* **Limits** are explicit module constants: ``MAX_BYTES`` (encoded size), ``MAX_PIXELS``
  (decoded size, checked from the header *before* decoding, so a decompression bomb such as
  a 30000 x 30000 PNG header costs nothing) and ``MIN_SIDE``.
* **Modes**: grayscale, palette, CMYK, YCbCr, LAB, 1-bit and 16/32-bit integer images are
  converted to 8-bit RGB. 16-bit values are scaled by 255/65535 (not clipped).
* **Alpha is composited on white**, not dropped: the colour under fully transparent pixels
  is undefined (often black or leftover junk), so dropping alpha can show garbage, while
  white is what a transparent PNG looks like on a page and gives the face detector a clean,
  predictable background.
* **Every failure** raises :class:`faceage.errors.BadImageError` whose message says what was
  wrong and what to do about it.

``save_png`` writes a PNG with text chunks (provenance: model, target age, version...)
atomically: a temporary file in the same folder, then ``os.replace``, so a crash or a full
disk never leaves a half-written result under the final name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from faceage.errors import BadImageError

MAX_BYTES = 25 * 1024 * 1024
"""Largest encoded file accepted (25 MiB): bigger than any phone photo, small enough to read in memory."""

MAX_PIXELS = 40_000_000
"""Largest decoded image accepted (40 megapixels, e.g. 7746 x 5164): about 120 MB as RGB."""

MIN_SIDE = 32
"""Smallest width or height accepted, in pixels: below this there is no face to find."""

WHITE = (255, 255, 255)
"""Background that transparent pixels are composited on."""

# Make every PIL decode in this process (also Gradio's own) refuse decompression bombs:
# PIL warns above MAX_IMAGE_PIXELS and raises above twice that. We only ever lower it.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

_MB = 1024 * 1024


def load_image(src: ImageSource) -> np.ndarray:
    """Read ``src`` into an upright ``(H, W, 3)`` uint8 RGB array, or raise ``BadImageError``.

    ``src`` may be a path (``str`` or ``os.PathLike``), encoded bytes, a binary file object,
    a PIL image or a numpy array (``(H, W)``, ``(H, W, 1|3|4)``, uint8 or uint16). The
    result is always a fresh, writable, C-contiguous array.
    """
    if isinstance(src, np.ndarray):
        pil = _array_to_pil(src)
    elif isinstance(src, Image.Image):
        pil = _decode_pil(src, what="The PIL image")
    else:
        data, what = _read_bytes(src)
        pil = _decode_bytes(data, what)
    return _to_rgb_array(pil)


def save_png(img: np.ndarray | Image.Image, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``img`` to ``path`` as PNG with ``metadata`` as text chunks, atomically.

    Values that are not strings are stored as JSON. Keys must be 1-79 Latin-1 characters
    (a PNG rule); values may be any Unicode (stored as iTXt when not Latin-1).
    Returns the final path.
    """
    path = Path(path)
    pil = img if isinstance(img, Image.Image) else Image.fromarray(_check_rgb_array(img))
    info = _png_text_chunks(metadata or {})
    with atomic_write(path) as tmp:
        pil.save(tmp, format="PNG", pnginfo=info)
    return path


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path in the same folder for the block to write;
    then fsync, mode 0644 (mkstemp makes 0600, and results and weights are ordinary files that servers
    and other users read) and ``os.replace`` onto ``path``. If the block raises, the temporary file is
    removed and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading bytes


def _read_bytes(src) -> tuple[bytes, str]:
    """Return the encoded bytes of ``src`` and a short description of it for messages."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, what = bytes(src), "The uploaded data"
    elif isinstance(src, (str, os.PathLike)):
        data, what = _read_path(Path(src)), f"'{src}'"
    elif hasattr(src, "read"):
        what = f"'{src.name}'" if isinstance(getattr(src, "name", None), str) else "The file object"
        if isinstance(src, io.TextIOBase):  # reading would decode the image's bytes as text and fail
            raise BadImageError(f"{what} is opened in text mode: open it in binary mode ('rb').")
        data = src.read(MAX_BYTES + 1)
        if not isinstance(data, bytes):
            raise BadImageError(f"{what} is opened in text mode: open it in binary mode ('rb').")
    else:
        raise BadImageError(
            f"Cannot read an image from a {type(src).__name__}: "
            "pass a file path, bytes, a binary file object, a PIL image or a numpy array."
        )
    _check_byte_count(len(data), what)
    return data, what


def _read_path(path: Path) -> bytes:
    """Read a file after checking that it exists and is not too big."""
    if not path.is_file():
        raise BadImageError(f"No such image file: '{path}'. Check the path.")
    _check_byte_count(path.stat().st_size, f"'{path}'")
    return path.read_bytes()


def _check_byte_count(n: int, what: str) -> None:
    """Refuse empty input and input over ``MAX_BYTES``."""
    if n == 0:
        raise BadImageError(f"{what} is empty (0 bytes): the upload or copy failed; pick the file again.")
    if n > MAX_BYTES:
        raise BadImageError(
            f"{what} is too big ({n / _MB:.1f} MB, limit {MAX_BYTES // _MB} MB): "
            "save it as a JPEG or downscale it first."
        )


# --------------------------------------------------------------------------- decoding


def _decode_bytes(data: bytes, what: str) -> Image.Image:
    """Open encoded bytes with PIL, checking the header size before decoding the pixels.

    PIL's own bomb check at open raises above twice ``Image.MAX_IMAGE_PIXELS`` and only warns
    below; the warning is silenced here because ``_decode_pil`` refuses those sizes itself, with
    the width and height in the message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise _too_many_pixels(what, detail=f"over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from e
    except Image.UnidentifiedImageError as e:
        raise BadImageError(
            f"{what} is not an image (no known image format in its bytes): "
            "use a JPEG, PNG, WebP, BMP, GIF or TIFF file."
        ) from e
    except Exception as e:  # PIL raises SyntaxError, ValueError... for broken headers
        raise BadImageError(
            f"{what} is not an image PIL can read ({type(e).__name__}: {e}): "
            "use a JPEG, PNG, WebP, BMP, GIF or TIFF file."
        ) from e
    return _decode_pil(pil, what)


def _decode_pil(pil: Image.Image, what: str) -> Image.Image:
    """Check the size, decode the first frame and apply the EXIF orientation."""
    _check_pixel_count(pil.size, what)
    try:
        if getattr(pil, "n_frames", 1) > 1:
            pil.seek(0)  # animated GIF / WebP / APNG: the first frame
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pil.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _too_many_pixels(what, detail=str(e)) from e
    except Exception as e:  # OSError "image file is truncated", broken streams...
        raise BadImageError(
            f"{what} could not be decoded ({type(e).__name__}: {e}); it is probably truncated or "
            "corrupt: upload the original file again or re-save it with an image editor."
        ) from e
    pil = _exif_upright(pil)
    _check_side_lengths(pil.size, what)
    return pil


def _exif_upright(pil: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF Orientation tag says; a broken EXIF block is ignored."""
    try:
        return ImageOps.exif_transpose(pil)
    except Exception:  # a malformed EXIF block must not make a good photo unusable
        return pil


def _check_pixel_count(size: tuple[int, int], what: str) -> None:
    """Refuse images over ``MAX_PIXELS`` (from the header, before decoding)."""
    w, h = size
    if w * h > MAX_PIXELS:
        raise _too_many_pixels(what, detail=f"{w} x {h} = {w * h / 1e6:.1f} megapixels")


def _too_many_pixels(what: str, detail: str) -> BadImageError:
    """The error for an image over ``MAX_PIXELS`` (or a decompression bomb)."""
    return BadImageError(
        f"{what} is too large ({detail}; limit {MAX_PIXELS / 1e6:.0f} megapixels): "
        "downscale it, e.g. to at most 4000 pixels on the long side."
    )


def _check_side_lengths(size: tuple[int, int], what: str) -> None:
    """Refuse images narrower or shorter than ``MIN_SIDE``."""
    w, h = size
    if min(w, h) < MIN_SIDE:
        raise BadImageError(
            f"{what} is too small ({w} x {h} pixels, minimum {MIN_SIDE} on each side): "
            "use a larger photo in which the face is at least ~64 pixels wide."
        )


# --------------------------------------------------------------------------- conversion


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    """Wrap a numpy image (gray, gray+1, RGB, RGBA; uint8 or uint16) as a PIL image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise BadImageError(f"A numpy image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {arr.shape}.")
    if arr.dtype == np.uint16:
        arr = _scale_16_to_8(arr)
    elif arr.dtype != np.uint8:
        raise BadImageError(
            f"A numpy image must be uint8 (0-255) or uint16; got {arr.dtype}: "
            "convert it, e.g. (x * 255).round().astype(np.uint8) for floats in [0, 1]."
        )
    what = f"The {arr.shape[1]} x {arr.shape[0]} array"
    _check_pixel_count((arr.shape[1], arr.shape[0]), what)
    _check_side_lengths((arr.shape[1], arr.shape[0]), what)
    return Image.fromarray(np.ascontiguousarray(arr))


def _scale_16_to_8(arr: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding (values outside are clipped first)."""
    arr = np.clip(arr.astype(np.float64), 0, 65535)
    return np.round(arr * (255.0 / 65535.0)).astype(np.uint8)


def _to_rgb_array(pil: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to an (H, W, 3) uint8 RGB array."""
    mode = pil.mode
    if mode.startswith("I"):
        # 16/32-bit integer gray: PIL's own convert("L") clips at 255 instead of scaling.
        return _gray_to_rgb(_scale_16_to_8(np.asarray(pil)))
    if mode == "F":
        # float gray: taken as 0..255, like PIL does.
        return _gray_to_rgb(np.round(np.clip(np.asarray(pil), 0, 255)).astype(np.uint8))
    try:
        if mode == "P":
            pil = pil.convert("RGBA") if "transparency" in pil.info else pil.convert("RGB")
        if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            pil = _composite_on_white(pil)
        elif pil.mode != "RGB":
            pil = pil.convert("RGB")  # L, 1, CMYK, YCbCr, HSV
    except (ValueError, OSError) as e:
        raise BadImageError(f"Cannot convert a {mode} image to RGB ({e}): re-save it as an RGB JPEG or PNG.") from e
    return np.array(pil, dtype=np.uint8, copy=True)


def _composite_on_white(pil: Image.Image) -> Image.Image:
    """Alpha-composite an image with transparency onto an opaque white background."""
    rgba = pil.convert("RGBA")
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """Repeat a (H, W) uint8 gray image into three channels."""
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _check_rgb_array(img: np.ndarray) -> np.ndarray:
    """Validate an (H, W, 3) uint8 array for writing."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BadImageError(
            f"save_png needs an (H, W, 3) uint8 RGB array or a PIL image; got "
            f"{getattr(img, 'shape', type(img).__name__)} {getattr(img, 'dtype', '')}."
        )
    return np.ascontiguousarray(img)


def _png_text_chunks(metadata: dict) -> PngImagePlugin.PngInfo:
    """Build PNG text chunks from a dict; non-string values become JSON."""
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        key = str(key)
        if not 1 <= len(key) <= 79 or not key.isprintable():
            raise ValueError(f"PNG text key {key!r} must be 1-79 printable characters.")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError as e:
            raise ValueError(f"PNG text key {key!r} must be Latin-1 (a PNG rule).") from e
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        info.add_text(key, text)
    return info
