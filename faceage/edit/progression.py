"""Age progressions: one face across several ages, as a strip, an animated GIF and (when OpenCV can) an MP4.

    frames = progression(session, [10, 30, 50, 70])      # the face at each age, labelled with it
    save_png(strip(frames), "strip.png"); save_gif(frames, "ages.gif"); save_mp4(frames, "ages.mp4")

Shared by ``faceage progression`` and the app's progression button. The per-photo work is the
session's (done once); each age costs one blur + decode of the face shown, and its transfer to the photo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_AGES = (5, 15, 25, 35, 50, 65, 80)
FRAME_MS = 400  # how long each age is shown in the GIF / MP4
# VP9 plays in browsers; MPEG-4 part 2 is the fallback (the FFmpeg in OpenCV's wheels has no H.264 encoder)
MP4_CODECS = ("vp09", "mp4v")


def progression(
    session,
    ages: Sequence[float],
    sigma_m=0.0,
    sigma_g=0.0,
    face: int = 0,
    on_frame: Callable[[int, float], None] | None = None,
    **edit,
) -> list[np.ndarray]:
    """Face ``face`` of ``session`` edited to each of ``ages`` (``edit``: ``mode``, ``source_age``, as the
    session's ``edit`` takes them) by ``session.edit_face``: the canonical frame at the face's own
    resolution, uint8 [S',S',3] (S' even), the age written on.

    ``on_frame(i, age)`` is called before frame ``i`` is made (for progress bars).
    """
    frames = []
    for i, age in enumerate(ages):
        if on_frame is not None:
            on_frame(i, age)
        frames.append(labelled(session.edit_face(age, sigma_m, sigma_g, face, **edit), f"{age:g}"))
    return frames


def shown_face(face: int | None) -> int:
    """The face a progression of a photo opened with ``face`` shows, for its metadata: that face, or the
    largest (0) when all were opened (:func:`progression` edits the session's first face)."""
    return 0 if face is None else int(face)


def labelled(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` in white on a dark box in its bottom-left corner (same size)."""
    pil = Image.fromarray(frame)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(10, frame.shape[0] // 9))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, frame.shape[0] // 64)
    x, y = pad, frame.shape[0] - (bottom - top) - 3 * pad
    draw.rectangle((x - pad, y - pad, x + right - left + pad, y + bottom - top + pad), fill=(0, 0, 0))
    draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255))
    return np.asarray(pil)


def strip(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The frames side by side, youngest first."""
    return np.concatenate(list(frames), axis=1)


def _loop(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Forward then back (without repeating the ends), so a looping animation has no jump."""
    frames = list(frames)
    return frames + frames[-2:0:-1]


def save_gif(frames: Sequence[np.ndarray], path, frame_ms: int = FRAME_MS) -> Path:
    """An endlessly looping GIF that goes up and back down the ages."""
    images = [Image.fromarray(f) for f in _loop(frames)]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return Path(path)


def save_mp4(frames: Sequence[np.ndarray], path, frame_ms: int = FRAME_MS) -> Path | None:
    """The same animation as an MP4 (one pass up and down); ``None`` when no OpenCV encoder is available."""
    try:
        import cv2
    except ImportError:
        return None
    frames = _loop(frames)
    h, w = frames[0].shape[:2]
    for codec in MP4_CODECS:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 1000 / frame_ms, (w, h))
        if writer.isOpened():
            for f in frames:
                writer.write(np.ascontiguousarray(f[..., ::-1]))  # OpenCV wants BGR
            writer.release()
            if Path(path).is_file() and Path(path).stat().st_size > 0:
                return Path(path)
        writer.release()
    return None
