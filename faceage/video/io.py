"""Video input and output with PyAV: one checked way in, one atomic way out.

``probe`` opens a file and refuses, with a :class:`~faceage.errors.BadVideoError` that says what to do, what
the editor cannot handle: not a video (or corrupt), no video stream, no frames, more than ``MAX_PIXELS`` per
frame or ``MAX_SECONDS`` of video. It reads only packets (no decoding), so it is cheap even on a long file. A
variable frame rate (phones often record one) is fine: every frame keeps its own timestamp.

``read_frames`` decodes the frames as RGB (upright is *not* applied: the pixels stay as coded and the
rotation tag is copied to the output, so a phone's portrait clip plays the same way after the edit; the face
pipeline finds faces in any quarter turn). The conversion to RGB uses the frame's own colour range and
matrix, and ``VideoWriter`` converts back to the same, tagging the output with the input's range, matrix,
primaries and transfer.

``VideoWriter`` encodes H.264 (libx264, yuv420p, ``+faststart``: plays in every browser) at the input's time
base, each frame at its input timestamp (same frame rate and count; a frame of odd width or height loses its
last column or row, which yuv420p cannot hold), and copies the input's audio packets
as they are (no re-encoding; any other audio codec than MP4 carries is re-encoded to AAC). It writes to a
temporary file in the output's folder and renames it onto the output only when the whole clip is done
(``faceage.io.atomic_write``): a failure or a cancel leaves nothing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceage.errors import BadParameterError, BadVideoError
from faceage.io import atomic_write

MAX_PIXELS = 3840 * 2160
"""Largest frame accepted (4K UHD): the editor keeps a few frames of this size in memory."""
MAX_SECONDS = 600.0
"""Longest clip accepted (10 minutes): at a few frames per second on a CPU that is already hours."""
MIN_SIDE = 32
"""Smallest frame width or height accepted (as for photos: below it there is no face to find)."""
VFR_TOLERANCE = 0.02
"""A clip has a variable frame rate when a frame's duration differs from the typical one by more than this
fraction (plus one time-base tick, for rounding in the container): it is edited all the same (each frame at
its own timestamp), and ``describe`` says so."""
OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov")
CRF = 18
"""x264 quality (lower = better; 18 is visually close to lossless)."""
PRESET = "veryfast"
"""x264 speed preset: ``docs/benchmarks.md`` measures the encode at 720p."""
X264_PARAMS = "mbtree=0"
"""x264's macroblock-tree rate control made a different file from the same frames run to run (up to 34 grey
levels apart, mean 0.16, on a 480x240 clip: 4 different files in 6 runs through the writer, 2 of 8 bare encodes
off; with one thread or several, with or without x264's assembly); without it the same frames give the same
file (14 of 14 runs)."""
COPIED_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
"""Audio codecs copied into the MP4 as they are; anything else is re-encoded to AAC."""


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` found in a video file."""

    path: Path
    width: int
    height: int
    rate: Fraction
    """Frames per second (the stream's average rate)."""
    frames: int
    """Number of video frames (counted from the packets)."""
    duration: float
    """Seconds of video."""
    rotation: int
    """Counter-clockwise display rotation in degrees (the container's display matrix), 0 if none."""
    audio: bool
    """Whether the file has an audio stream (copied to the output)."""
    variable: bool = False
    """Whether the frame rate varies (``rate`` is then the average); each frame keeps its timestamp."""

    def describe(self) -> str:
        """One line for the user: size, length, rate."""
        rate = f"{'variable, about ' if self.variable else ''}{float(self.rate):.3g} frames/s"
        return (
            f"{self.width}x{self.height}, {self.frames} frames, {rate}, "
            f"{self.duration:.1f} s{', audio' if self.audio else ''}"
        )


def _open(path: Path):
    import av

    if not path.is_file():
        raise BadVideoError(f"{path}: no such file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise BadVideoError(
            f"{path.name} is not a video faceage can read ({_reason(e)}): use an MP4, MOV, WebM or MKV file"
        ) from None


def _reason(e: Exception) -> str:
    return (getattr(e, "strerror", None) or str(e)).strip().rstrip(".")


def probe(path, max_seconds: float = MAX_SECONDS, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Check ``path`` as a video the editor can handle and say what it holds (see the module's doc)."""
    import av

    path = Path(path)
    with _open(path) as box:
        if not box.streams.video:
            raise BadVideoError(f"{path.name} has no video stream (an audio file or an image?): use a video file")
        stream = box.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if min(w, h) < MIN_SIDE:
            raise BadVideoError(f"{path.name} is {w}x{h} pixels: at least {MIN_SIDE} on each side is needed")
        if w * h > max_pixels:
            raise BadVideoError(
                f"{path.name} is {w}x{h} pixels, more than the {_pixels(max_pixels)} accepted: "
                "scale it down first (e.g. ffmpeg -i in.mp4 -vf scale=-2:720 out.mp4)"
            )
        pts = []
        try:
            for packet in box.demux(stream):
                if packet.pts is not None and packet.size:
                    pts.append(packet.pts)
                if len(pts) % 256 == 0 and _seconds(pts, stream) > max_seconds:
                    break
        except av.FFmpegError as e:
            raise BadVideoError(f"{path.name} is damaged ({_reason(e)}): re-export or re-download it") from None
        if not pts:
            raise BadVideoError(f"{path.name} has no video frames")
        if _seconds(pts, stream) > max_seconds:
            raise BadVideoError(
                f"{path.name} is longer than the {max_seconds:g} s accepted: cut it first "
                f"(e.g. ffmpeg -i in.mp4 -t {max_seconds:g} -c copy out.mp4)"
            )
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise BadVideoError(f"{path.name} has no frame rate: re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)")
        rotation = _rotation(box, stream)
        return VideoInfo(
            path,
            w,
            h,
            Fraction(rate),
            len(pts),
            len(pts) / float(rate),
            rotation,
            bool(box.streams.audio),
            _variable_rate(sorted(pts)),
        )


def _seconds(pts: list[int], stream) -> float:
    return float((max(pts) - min(pts)) * stream.time_base) if pts else 0.0


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels"


def _variable_rate(pts: list[int]) -> bool:
    """Whether the frames are not evenly spaced in time (``VFR_TOLERANCE``)."""
    if len(pts) < 3:
        return False
    steps = np.diff(np.asarray(pts, np.int64))
    typical = float(np.median(steps))
    return bool(typical <= 0 or np.any(np.abs(steps - typical) > typical * VFR_TOLERANCE + 1))


def _rotation(box, stream) -> int:
    """The display rotation tagged on ``stream`` (degrees counter-clockwise), read from its first frame."""
    import av

    with contextlib.suppress(av.FFmpegError, StopIteration):
        box.seek(0, stream=stream)
        return int(round(next(box.decode(stream)).rotation)) % 360
    return 0


def read_frames(path, limit: int | None = None) -> Iterator[tuple[np.ndarray, object]]:
    """``(rgb uint8 [H, W, 3], frame)`` for each decoded frame of ``path`` (at most ``limit``); ``frame`` is
    PyAV's, whose ``pts``/``time_base`` the writer keeps. Damage mid-file is a BadVideoError."""
    import av

    path = Path(path)
    with _open(path) as box:
        stream = box.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        try:
            for frame in box.decode(stream):
                yield to_rgb(frame), frame
                n += 1
                if limit is not None and n >= limit:
                    return
        except av.FFmpegError as e:
            raise BadVideoError(f"{path.name} is damaged after frame {n} ({_reason(e)}): re-export it") from None


def to_rgb(frame) -> np.ndarray:
    """A decoded frame as RGB, using its own colour range (full or limited) and matrix."""
    return frame.reformat(
        format="rgb24", src_color_range=frame.color_range or None, dst_color_range="JPEG"
    ).to_ndarray()


def check_output(path) -> Path:
    """``path`` as a Path if it can take the output (an MP4 name in a folder that exists), else a
    BadParameterError."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise BadParameterError(f"the output must be an MP4 file ({', '.join(OUTPUT_SUFFIXES)}), got {path.name}")
    if not path.parent.is_dir():
        raise BadParameterError(f"the output's folder {path.parent} does not exist")
    return path


class VideoWriter:
    """H.264 MP4 writer that keeps the input's timing, rotation, colour tags and audio (module doc).

    Use as a context manager; ``write(rgb, frame)`` per frame (``frame``: the input frame it came from).
    The output appears at ``path`` only when the block ends without an exception.
    """

    def __init__(self, path, source: VideoInfo, end_time: float | None = None):
        self.path, self.source, self.end_time = check_output(path), source, end_time
        self._atomic = None

    def __enter__(self) -> VideoWriter:
        import av

        self._atomic = atomic_write(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._in = av.open(str(self.source.path), metadata_errors="ignore")
            src = self._in.streams.video[0]
            self._box = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
            v = self._box.add_stream("libx264", rate=self.source.rate)
            v.width, v.height, v.pix_fmt = self.source.width // 2 * 2, self.source.height // 2 * 2, "yuv420p"
            v.time_base = src.time_base
            v.codec_context.time_base = src.time_base
            v.options = {"crf": str(CRF), "preset": PRESET, "x264-params": X264_PARAMS}
            cc = src.codec_context
            for tag in ("color_range", "colorspace", "color_primaries", "color_trc"):
                with contextlib.suppress(Exception):
                    if getattr(cc, tag):
                        setattr(v.codec_context, tag, getattr(cc, tag))
            if self.source.rotation:
                v.set_display_rotation(self.source.rotation)
            self._v = v
            self._range = cc.color_range or None
            self._audio_in = self._in.streams.audio[0] if self._in.streams.audio else None
            self._audio_out = self._audio_stream()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def _audio_stream(self):
        a = self._audio_in
        if a is None:
            return None
        if a.codec_context.name in COPIED_AUDIO:
            self._reencode = False
            return self._box.add_stream_from_template(a)
        self._reencode = True
        return self._box.add_stream("aac", rate=a.codec_context.sample_rate or 48000)

    def write(self, rgb: np.ndarray, frame) -> None:
        """Encode ``rgb`` (the input frame's size) at the input ``frame``'s timestamp."""
        import av

        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self._v.height, : self._v.width]), format="rgb24")
        out = out.reformat(format="yuv420p", src_color_range="JPEG", dst_color_range=self._range)
        if self._range:
            out.color_range = self._range
        out.pts, out.time_base = frame.pts, frame.time_base
        self._box.mux(self._v.encode(out))

    def __exit__(self, kind, value, tb):
        try:
            if kind is None:
                self._box.mux(self._v.encode(None))
                self._copy_audio()
            self._box.close()
            self._in.close()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self._atomic.__exit__(kind, value, tb)

    def _copy_audio(self) -> None:
        """The input's audio (up to ``end_time`` when set), after the video: MP4 readers do not need it
        interleaved, and ``+faststart`` puts the index first."""
        a = self._audio_in
        if a is None:
            return
        end = None if self.end_time is None else self.end_time / a.time_base + (a.start_time or 0)
        if not self._reencode:
            for packet in self._in.demux(a):
                if packet.dts is None:
                    continue
                if end is not None and packet.pts is not None and packet.pts >= end:
                    break
                packet.stream = self._audio_out
                self._box.mux(packet)
            return
        for frame in self._in.decode(a):
            if end is not None and frame.pts is not None and frame.pts >= end:
                break
            frame.pts = None
            self._box.mux(self._audio_out.encode(frame))
        self._box.mux(self._audio_out.encode(None))
