"""Synthetic test clips made from the real photos in ``train/real_photos`` (licences: its manifest.json).

A face photo is moved, zoomed, rotated and brightened over the frames of a clip on a plain background
(``moving_photo``); two faces can cross each other (``crossing_faces``: one passes in front of the other);
a sine-wave AAC track can be added. Used by ``tests/test_video.py``, ``train/bench/video.py`` and
``train/video_frames.py``; everything is made on the fly, at the size asked for.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from faceage.io import load_image

PHOTOS = Path(__file__).resolve().parent / "real_photos"


def photo(name: str) -> np.ndarray:
    """A committed real photo as RGB."""

    return load_image(PHOTOS / name)


def face_crop(name: str, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """``name`` (or its ``box`` given as fractions l, t, r, b of the photo) as RGB."""
    img = photo(name)
    if box is None:
        return img
    h, w = img.shape[:2]
    return img[int(box[1] * h) : int(box[3] * h), int(box[0] * w) : int(box[2] * w)]


def place(canvas: np.ndarray, img: np.ndarray, centre, height: float, angle: float = 0.0, gain: float = 1.0) -> None:
    """Draw ``img`` onto ``canvas`` (in place) centred at ``centre``, ``height`` px tall, rotated by ``angle``
    degrees, its brightness times ``gain``."""
    h, w = img.shape[:2]
    s = height / h
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, s)
    m[:, 2] += (centre[0] - w / 2, centre[1] - h / 2)
    H, W = canvas.shape[:2]
    warped = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (W, H), flags=cv2.INTER_NEAREST) > 0
    canvas[inside] = np.clip(warped[inside].astype(np.float32) * gain, 0, 255).astype(np.uint8)


def moving_photo(
    n: int, size=(320, 240), name: str = "smile.jpg", still: bool = False, noise: float = 2.0, seed: int = 0
) -> list[np.ndarray]:
    """``n`` frames of ``name`` moved, zoomed, rotated and brightened over the clip (``still``: the same frame
    each time, with only camera-like noise of ``noise`` grey levels, for flicker)."""
    W, H = size
    img = photo(name)
    rng = np.random.default_rng(seed)
    bg = np.full((H, W, 3), 90, np.uint8)
    frames = []
    for i in range(n):
        t = 0.0 if still else i / max(n - 1, 1)
        canvas = bg.copy()
        place(
            canvas,
            img,
            (W * (0.45 + 0.1 * t), H * (0.5 + 0.05 * np.sin(3 * t))),
            H * (0.85 + 0.15 * t),
            angle=8 * np.sin(2 * np.pi * t),
            gain=1.0 + 0.15 * np.sin(2 * np.pi * t),
        )
        if noise:
            canvas = np.clip(canvas + rng.normal(0, noise, canvas.shape), 0, 255).astype(np.uint8)
        frames.append(canvas)
    return frames


def crossing_faces(n: int, size=(480, 240)) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """``n`` frames of two different people crossing: A (luispedro.jpg) walks left to right behind B
    (smile.jpg), who walks right to left in front, hiding A for a few frames. Also the true centres of A per
    frame (for identity checks)."""
    W, H = size
    a, b = photo("luispedro.jpg"), photo("smile.jpg")
    frames, centres = [], []
    for i in range(n):
        t = i / max(n - 1, 1)
        canvas = np.full((H, W, 3), 90, np.uint8)
        ca = (W * (0.2 + 0.6 * t), H * 0.5)
        cb = (W * (0.8 - 0.6 * t), H * 0.52)
        place(canvas, a, ca, H * 0.8)
        place(canvas, b, cb, H * 0.9)
        frames.append(canvas)
        centres.append(ca)
    return frames, centres


def write_clip(
    path,
    frames: list[np.ndarray],
    fps: int = 10,
    audio_hz: float | None = None,
    rotation: int = 0,
    lossless: bool = False,
) -> Path:
    """Write ``frames`` as an MP4 at ``fps`` (yuv420p H.264), with a sine of ``audio_hz`` Hz as AAC (48 kHz
    mono, the clip's duration) when given, and a display rotation tag when ``rotation``. ``lossless``: keep the
    frames' noise exactly (x264 at qp 0), as a camera's noise survives its own encoder; by default x264's
    defaults, which smooth a still clip's noise away."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as box:
        v = box.add_stream("libx264", rate=fps)
        if lossless:
            v.options = {"qp": "0"}
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio_hz:
            a = box.add_stream("aac", rate=48000)
            a.layout = "mono"
        for f in frames:
            box.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        box.mux(v.encode(None))
        if a is not None:
            samples = sine(audio_hz, len(frames) / fps)
            for i in range(0, len(samples), 1024):
                chunk = samples[None, i : i + 1024]
                fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = 48000, i, Fraction(1, 48000)
                box.mux(a.encode(fr))
            box.mux(a.encode(None))
    return path


def sine(hz: float, seconds: float, rate: int = 48000) -> np.ndarray:
    """A sine of ``hz`` at half amplitude, float32."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
