"""Age the faces of a video: decode, track, edit, encode, frame by frame.

    from faceage import VideoEditor
    ved = VideoEditor.load()                                  # the shipped CUSP weights, CPU or CUDA
    result = ved.edit("in.mp4", "out.mp4", age=70)            # every face; progress(done, total) optional
    result.fps, result.stages, result.flicker, result.tracks  # what it measured
    ved.edit("in.mp4", "out.mp4", 60, signs={"forehead": 0.9})        # per sign, rendered by CUSP's decodes
    ved.edit("in.mp4", "out.mp4", 60, painted_map="painted.png")       # a map painted on `faceage amgan-map`
    VideoEditor.load(renderer="amgan").edit("in.mp4", "out.mp4", 60, signs={"forehead": 0.9})  # by AgingMapGAN

Per track (one person, ``faceage.video.track``), at the frame it starts: the face aligned on its
(detected) mesh and opened as a photo's face is (``PhotoEditor.open_aligned``: CUSP's mask and encoders, its
own age as classifier C reads it, or ``source_age``), the model's edit and its reconstruction at the face's
own age (the same calls a photo's edit makes: ``model_edits`` of CUSP's session, of its ``MapRenderer`` for
per-sign maps, or of AgingMapGAN's session) and the detail path's change in the crop frame
(``faceage.video.change``). Per frame: the tracker's smoothed
points give each face's alignment, and the track's change is laid onto the frame there. Nothing about a
track's edit changes during the clip, so the edit does not flicker; ``Flicker`` measures it.

Failures are typed (``faceage.errors``): a bad file (``BadVideoError``, from ``faceage.video.io.probe``
before anything runs), no face in any frame (``NoFaceError``), a cancel (``CancelledError``); in each case
nothing is left at the output path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceage.amgan.editor import AMGANEditor, as_map, check_signs
from faceage.cusp.editor import CUSPEditor, check_controls
from faceage.cusp.map_render import MapRenderer
from faceage.cusp.mask import PRESETS
from faceage.edit.photo_editor import check_age, check_mode
from faceage.errors import BadParameterError, CancelledError, NoFaceError
from faceage.face.align import align_face, mesh_alignment_matrix
from faceage.face.mesh import MeshFit
from faceage.video.change import CropChange
from faceage.video.io import (
    MAX_PIXELS,
    MAX_SECONDS,
    VideoInfo,
    VideoWriter,
    probe,
    read_frames,
)
from faceage.video.track import DETECT_EVERY, Track, Tracker

RENDERERS = ("cusp", "amgan")
"""What renders the edit: CUSP (by age, or per-sign maps through its decodes), or the AgingMapGAN network."""
SIGMA_M, SIGMA_G = PRESETS["custom preservation"]

STAGES = ("decode", "track", "prepare", "edit", "encode")
"""Where the time goes, per frame: decoding to RGB, tracking (mesh follow + detector runs), a new track's
network work (mask, encoders, two decodes, flow), laying the changes onto the frame, encoding."""

NO_FACE_IN_VIDEO = (
    "No face found in any frame of the video: use a clip where a face is clearly visible (at "
    "least ~40 px wide, eyes not covered, turned less than about 60 degrees)."
)
STATIC = 6
"""Flicker is measured where the input changes by less than this (grey levels) between two frames."""


@dataclass
class Flicker:
    """Frame-to-frame change of the *edit* (output minus input) against the input's own frame-to-frame
    change, on the static pixels of the edited faces (where the mask is over 1/2 and the input changes by
    less than ``STATIC``). ``ratio`` < 1: the edit changes less between frames than the video itself."""

    edit_change: float = 0.0
    input_change: float = 0.0
    pixels: int = 0

    def add(self, prev_in, prev_out, cur_in, cur_out, box, alpha) -> None:
        x0, y0, x1, y1 = box
        sl = (slice(y0, y1), slice(x0, x1))
        a, b = prev_in[sl].astype(np.int16), cur_in[sl].astype(np.int16)
        d_in = np.abs(b - a).mean(2)
        d_edit = np.abs((cur_out[sl].astype(np.int16) - b) - (prev_out[sl].astype(np.int16) - a)).mean(2)
        where = (alpha > 0.5) & (d_in < STATIC)
        self.edit_change += float(d_edit[where].sum())
        self.input_change += float(d_in[where].sum())
        self.pixels += int(where.sum())

    @property
    def ratio(self) -> float:
        return self.edit_change / self.input_change if self.input_change > 0 else float("nan")

    def __str__(self) -> str:
        if not self.pixels:
            return "flicker: not measured (no face seen in two frames in a row)"
        return (
            f"flicker: the edit changes {self.edit_change / self.pixels:.2f} grey levels per frame on the "
            f"faces' static pixels, the input {self.input_change / self.pixels:.2f} (ratio {self.ratio:.2f})"
        )


@dataclass
class VideoResult:
    """What an edit wrote and measured."""

    path: Path | None
    source: VideoInfo
    frames: int
    tracks: list[Track]
    source_ages: dict[int, float]
    """Each edited track's own age (as read, or as given)."""
    faces: dict[int, np.ndarray]
    """Each edited track's face where its edit was made: the aligned crop (uint8 [S, S, 3]), to tell them apart."""
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    """Milliseconds per frame in each of ``STAGES``."""
    flicker: Flicker = field(default_factory=Flicker)
    detections: int = 0
    """How many frames the face detector ran on (the mesh followed the faces on the others)."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stages.items())
        ages = ", ".join(f"{i}: {a:g}" for i, a in self.source_ages.items())
        return (
            f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s; ms/frame: {stages}); "
            f"{len(self.tracks)} face track(s), own ages {ages or '-'}; {self.flicker}"
        )


@dataclass
class _TrackEdit:
    change: object  # CropChange
    source_age: float
    face: np.ndarray  # the aligned crop the edit was made from


class VideoEditor:
    """Edits videos with a :class:`faceage.cusp.editor.CUSPEditor` or a
    :class:`faceage.amgan.editor.AMGANEditor` (``editor``)."""

    def __init__(self, editor, every: int = DETECT_EVERY):
        self.editor, self.every = editor, every

    @classmethod
    def load(cls, weights=None, device: str | None = None, renderer: str = "cusp", **kw) -> VideoEditor:
        """The shipped (or ``weights``) CUSP editor, or AgingMapGAN's with ``renderer="amgan"``."""
        if renderer not in RENDERERS:
            raise BadParameterError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
        model = AMGANEditor if renderer == "amgan" else CUSPEditor
        return cls(model.load(weights, device=device), **kw)

    def edit(
        self,
        src,
        dst,
        age,
        sigma_m: float = SIGMA_M,
        sigma_g: float = SIGMA_G,
        mode: str = "detail",
        source_age: float | Sequence[float] | None = None,
        face: int | None = None,
        seconds: float | None = None,
        *,
        signs: dict[str, float] | None = None,
        painted_map=None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        max_seconds: float = MAX_SECONDS,
        max_pixels: int = MAX_PIXELS,
    ) -> VideoResult:
        """Write ``src`` with its faces aged to ``age`` to ``dst`` (an .mp4). ``face``: only the track of that
        number (tracks are numbered as they appear, largest first; 0 = the first); ``source_age``: the faces'
        own age, one for all or one per track in that order; ``seconds``: only the clip's first seconds (a
        preview); ``progress(done, total)`` after each frame; ``cancel()`` true stops (CancelledError).

        Per sign (as ``faceage map`` / ``faceage amgan`` on a photo): ``signs`` ``{sign: score 0..1}`` (the rest
        of the face follows ``age``) or ``painted_map`` (a map painted on the canonical crop, for every face:
        see :func:`faceage.amgan.editor.as_map`). An AMGAN editor renders them with its network (and ignores
        the sigmas); a CUSP editor through its decodes (``faceage.cusp.map_render``)."""

        look = self._look(age, sigma_m, sigma_g, mode, signs, painted_map)
        ages = _source_ages(source_age)
        if face is not None and (isinstance(face, bool) or not isinstance(face, (int, np.integer)) or face < 0):
            raise BadParameterError(f"face must be a face number (0 = the first to appear) or None, got {face!r}")
        info = probe(src, max_seconds, max_pixels)
        total = info.frames if seconds is None else min(info.frames, max(1, round(seconds * float(info.rate))))
        tracker = Tracker(self.every)
        edits: dict[int, _TrackEdit] = {}
        clock = dict.fromkeys(STAGES, 0.0)
        flicker = Flicker()
        done, prev = 0, None
        start = time.perf_counter()
        end_time = None if seconds is None else total / float(info.rate)
        with VideoWriter(dst, info, end_time) as writer:
            frames = read_frames(info.path, total)
            while True:
                t0 = time.perf_counter()
                item = next(frames, None)
                t1 = time.perf_counter()
                clock["decode"] += t1 - t0
                if item is None:
                    break
                rgb, frame = item
                if cancel is not None and cancel():
                    raise CancelledError("cancelled: nothing was written")
                seen = tracker.update(rgb, done, _seconds(frame, done, info.rate))
                t2 = time.perf_counter()
                clock["track"] += t2 - t1
                chosen = [tr for tr in seen if face is None or tr.id == face]
                for tr in chosen:
                    if tr.id not in edits:
                        edits[tr.id] = self._prepare(rgb, tr, look, ages)
                t3 = time.perf_counter()
                clock["prepare"] += t3 - t2
                out = rgb.copy()
                windows = []
                for tr in chosen:
                    change = edits[tr.id].change
                    w = change.apply(rgb, mesh_alignment_matrix(tr.smooth, change.size), out)
                    if w is not None:
                        windows.append((tr.id, w))
                if prev is not None:
                    for tid, (box, alpha) in windows:
                        if tid in prev[2]:
                            flicker.add(prev[0], prev[1], rgb, out, box, alpha)
                prev = (rgb, out, {tid for tid, _ in windows})
                t4 = time.perf_counter()
                clock["edit"] += t4 - t3
                writer.write(out, frame)
                clock["encode"] += time.perf_counter() - t4
                done += 1
                if progress is not None:
                    progress(done, total)
            if not edits:
                raise NoFaceError(
                    NO_FACE_IN_VIDEO
                    if face is None
                    else (
                        f"Face {face} was asked for, but the video has {len(tracker.all_tracks())} face track(s): "
                        "use a "
                        "number below that, or leave it out for every face."
                    )
                )
            t5 = time.perf_counter()
        clock["encode"] += time.perf_counter() - t5  # the flush, audio copy and rename
        elapsed = time.perf_counter() - start
        stages = {k: 1000 * v / max(done, 1) for k, v in clock.items()}
        return VideoResult(
            Path(dst),
            info,
            done,
            tracker.all_tracks(),
            {i: e.source_age for i, e in sorted(edits.items())},
            {i: e.face for i, e in sorted(edits.items())},
            elapsed,
            stages,
            flicker,
            tracker.detections,
        )

    def _look(self, age, sigma_m, sigma_g, mode, signs, painted) -> Callable:
        """The checked controls as ``(session, own age) -> (edits, recons)``: the model's crops for a track."""
        mode, signs = check_mode(mode), check_signs(signs)
        age, sigma_m, sigma_g = check_controls(age, sigma_m, sigma_g)
        if painted is not None:
            painted = as_map(painted, self.editor.resolution)
        if isinstance(self.editor, AMGANEditor):
            return lambda s, own: s.model_edits(age, signs, painted, mode, own)
        if signs or painted is not None:
            return lambda s, own: MapRenderer(s).model_edits(age, signs, sigma_m, sigma_g, painted, mode, own)
        return lambda s, own: s.model_edits(age, sigma_m, sigma_g, mode, own)

    def _prepare(self, rgb: np.ndarray, tr: Track, look: Callable, ages: Callable) -> _TrackEdit:
        """The track's network work, once: its face opened as a photo's face is, the model's edit and
        reconstruction, the change in the crop frame."""

        aligned = align_face(rgb, MeshFit(tr.smooth, 1.0).landmarks68, self.editor.resolution, tr.smooth)
        session = self.editor.open_aligned(rgb, [aligned])
        own = ages(tr.id, session.read_ages[0])
        edits, recons = look(session, own)
        change = CropChange(aligned, rgb, edits[0], None if recons is None else recons[0])
        return _TrackEdit(change, own, aligned.crop)


def _seconds(frame, index: int, rate: Fraction) -> float:
    """The time of ``frame`` (number ``index``) in seconds: its timestamp (a variable frame rate keeps it),
    else ``index`` frames at ``rate``."""
    if frame.pts is None or frame.time_base is None:
        return index / float(rate)
    return float(frame.pts * frame.time_base)


def _source_ages(source_age) -> Callable[[int, float], float]:
    """``(track number, age C reads) -> the age its change starts from`` for ``source_age`` (None: as read; a
    number: for every track; a list: per track, in order of appearance, as read past its end)."""
    if source_age is None:
        return lambda i, read: read
    if isinstance(source_age, (int, float, np.number)) and not isinstance(source_age, bool):
        a = check_age(source_age, "source age")
        return lambda i, read: a
    if isinstance(source_age, (str, bytes)) or not isinstance(source_age, Sequence):
        raise BadParameterError(f"source_age must be an age, a list of ages (one per face) or None, got {source_age!r}")
    given = [check_age(a, "source age") for a in source_age]
    return lambda i, read: given[i] if i < len(given) else read


def edit_video(src, dst, age, weights=None, device: str | None = None, renderer: str = "cusp", **kw) -> VideoResult:
    """One call: load the editor (CUSP, or AgingMapGAN's with ``renderer="amgan"``) and :meth:`VideoEditor.edit`
    ``src`` into ``dst``."""
    return VideoEditor.load(weights, device, renderer).edit(src, dst, age, **kw)
