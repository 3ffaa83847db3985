"""Faces tracked through a clip: one track per person, its landmarks smoothed in time.

Per frame (``Tracker.update``):

1. every live track follows its face: the Face Mesh runs once on the region its last points span
   (``faceage.face.mesh.follow_mesh``, ~5 ms); a face-presence score below ``detect.PRESENCE`` counts as a miss;
2. two tracks on the same face (the mesh of a face hidden behind another one slides onto the front face)
   keep the one whose face looks like its own (``Track.signature``, a small grey thumbnail of the aligned face
   taken when the track started); the other counts as a miss;
3. every ``every`` frames (and on the first), the detector runs (YuNet + mesh, ``detect.detect_faces``, ~90 ms
   at 720p): a detection overlapping a track refreshes its points; one that does not revives a track missed
   for at most ``keep`` frames if its face looks like that track's and it is near where the track was going,
   else it starts a new track (numbered in order of appearance, largest first within a frame);
4. a track missed for more than ``keep`` frames ends.

The points the editor aligns on are the mesh's, smoothed by a one-euro filter (Casiez, Roussel and Vogel,
CHI 2012): a low cut-off while the face is still (no jitter), rising with its speed (no lag when it moves).
The filter runs on points divided by the face's size, so its settings hold at any resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from faceage.face.align import mesh_alignment_matrix, warp_to_crop
from faceage.face.detect import PRESENCE, detect_faces, iou
from faceage.face.mesh import follow_mesh

DETECT_EVERY = 10
"""Frames between two detector runs (the mesh follows the faces in between)."""
KEEP = 30
"""A track missed for up to this many frames (about a second) keeps its identity when its face comes back."""
MIN_CUTOFF = 0.5
"""One-euro filter: cut-off frequency (Hz) of a still face's landmarks."""
BETA = 1.0
"""One-euro filter: how fast the cut-off rises with the face's speed (face sizes per second)."""
D_CUTOFF = 1.0
"""One-euro filter: cut-off (Hz) of the speed estimate."""
SAME_FACE_IOU = 0.5
"""Two tracks whose faces overlap by this IoU are on the same face (step 2)."""
MATCH_IOU = 0.3
"""A detection overlapping a track by this IoU is that track's face (step 3)."""
REVIVE_LIKENESS = 0.5
"""A lost track is revived by a face at least this much like its own (normalised correlation of thumbnails)."""
SIGNATURE = 24
"""Side (px) of the thumbnail a track's face is recognised by."""


class OneEuro:
    """One-euro filter of an array of points (all share one cut-off, so the face's shape is kept)."""

    def __init__(self, min_cutoff: float | None = None, beta: float | None = None, d_cutoff: float = D_CUTOFF):
        self.min_cutoff = MIN_CUTOFF if min_cutoff is None else min_cutoff
        self.beta = BETA if beta is None else beta
        self.d_cutoff = d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """The filtered value of ``x`` observed at time ``t`` (seconds)."""
        x = np.asarray(x, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return self.x.copy()
        dt = t - self.t
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * (x - self.x) / dt + (1 - a_d) * self.dx
        speed = float(np.linalg.norm(self.dx, axis=-1).mean())
        a = self._alpha(self.min_cutoff + self.beta * speed, dt)
        self.x, self.t = a * x + (1 - a) * self.x, t
        return self.x.copy()


def box_of(points: np.ndarray) -> np.ndarray:
    """[l, t, r, b] of a point cloud."""
    return np.concatenate([points.min(0), points.max(0)])


def signature(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The face on ``points`` aligned, grey, ``SIGNATURE`` px, zero mean and unit norm: what a track is
    recognised by."""
    crop = warp_to_crop(frame, mesh_alignment_matrix(points, SIGNATURE), SIGNATURE)
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32).ravel()
    g -= g.mean()
    return g / (np.linalg.norm(g) + 1e-6)


@dataclass
class Track:
    """One person through the clip."""

    id: int
    points: np.ndarray
    """The mesh's latest points (468, 2), raw (what the next frame's follow starts from)."""
    signature: np.ndarray
    scale: float
    """The face's size when the track started (px): the filter runs on points divided by it."""
    smooth: np.ndarray | None = None
    """The smoothed points (468, 2) of the latest frame seen, what the editor aligns on."""
    missed: int = 0
    """Frames since the face was last seen (0: seen in this frame)."""
    seen: int = 0
    """Frames the face was seen in."""
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    """Centre motion per frame (px), for where a lost face is expected."""
    filter: OneEuro = field(default_factory=OneEuro)
    path: list = field(default_factory=list)
    """``(frame index, centre x, centre y)`` of every frame the face was seen in."""
    state: object = None
    """What the editor keeps per track (``faceage.video.edit``)."""

    @property
    def visible(self) -> bool:
        return self.missed == 0

    @property
    def box(self) -> np.ndarray:
        return box_of(self.points)

    def likeness(self, frame: np.ndarray, points: np.ndarray) -> float:
        """How much the face on ``points`` looks like this track's (-1..1)."""
        return float(signature(frame, points) @ self.signature)

    def observe(self, index: int, t: float, points: np.ndarray) -> None:
        centre = points.mean(0)
        if self.path:
            gap = index - self.path[-1][0]
            self.velocity = (centre - np.array(self.path[-1][1:])) / max(gap, 1)
        self.points, self.missed = points, 0
        self.seen += 1
        self.smooth = self.filter(t, points / self.scale) * self.scale
        self.path.append((index, float(centre[0]), float(centre[1])))


class Tracker:
    """Tracks faces frame by frame (module doc). ``update`` returns the tracks seen in the frame."""

    def __init__(self, every: int = DETECT_EVERY, keep: int = KEEP):
        self.every, self.keep = every, keep
        self.tracks: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 0
        self.detections = 0

    def update(self, frame: np.ndarray, index: int, t: float) -> list[Track]:

        found: dict[int, np.ndarray] = {}
        for tr in self.tracks:
            if tr.missed <= 2:  # a face just lost (hidden for a frame or two) may still be where it was
                fit = follow_mesh(frame, tr.points)
                if fit.presence >= PRESENCE:
                    found[tr.id] = fit.points[:, :2]
        self._one_track_per_face(frame, found)
        if index % self.every == 0 or (index % max(self.every // 2, 1) == 0 and len(found) < len(self.tracks)):
            self._detect(frame, index, found)
        for tr in list(self.tracks):
            if tr.id in found:
                tr.observe(index, t, found[tr.id])
            else:
                tr.missed += 1
                if tr.missed > self.keep:
                    self.tracks.remove(tr)
                    self.ended.append(tr)
        return [tr for tr in self.tracks if tr.visible]

    def _one_track_per_face(self, frame: np.ndarray, found: dict) -> None:
        by_id = {tr.id: tr for tr in self.tracks}
        ids = sorted(found)
        for i in ids:
            for j in ids:
                if i < j and i in found and j in found and iou(box_of(found[i]), box_of(found[j])) > SAME_FACE_IOU:
                    li = by_id[i].likeness(frame, found[i])
                    lj = by_id[j].likeness(frame, found[j])
                    del found[j if li >= lj else i]

    def _detect(self, frame: np.ndarray, index: int, found: dict) -> None:

        self.detections += 1
        faces = [f for f in detect_faces(frame) if not f.too_turned]  # largest first
        by_id = {tr.id: tr for tr in self.tracks}
        unmatched = []
        for f in faces:
            fbox = box_of(f.mesh)
            best = max(found, key=lambda i: iou(box_of(found[i]), fbox), default=None)
            if best is not None and iou(box_of(found[best]), fbox) > MATCH_IOU:
                continue  # the followed points are kept: the detector's fit differs by a jump, not by accuracy
            else:
                unmatched.append(f)
        for f in unmatched:
            lost = [tr for tr in self.tracks if tr.id not in found]
            scored = [(tr.likeness(frame, f.mesh), tr) for tr in lost if self._near(tr, f.mesh, index)]
            like, tr = max(scored, key=lambda s: s[0], default=(-1.0, None))
            if tr is not None and like >= REVIVE_LIKENESS:
                found[tr.id] = f.mesh
                continue
            tr = Track(self._next_id, f.mesh, signature(frame, f.mesh), float(np.ptp(f.mesh, axis=0).max()))
            self._next_id += 1
            self.tracks.append(tr)
            by_id[tr.id] = tr
            found[tr.id] = f.mesh

    @staticmethod
    def _near(tr: Track, points: np.ndarray, index: int) -> bool:
        """Whether ``points`` are where ``tr``'s face could have gone since it was last seen (its speed kept,
        give or take two face sizes)."""
        last = np.array(tr.path[-1][1:]) if tr.path else tr.points.mean(0)
        gap = index - tr.path[-1][0] if tr.path else 0
        expected = last + tr.velocity * gap
        return float(np.linalg.norm(points.mean(0) - expected)) < 2 * tr.scale

    def all_tracks(self) -> list[Track]:
        """Every track of the clip so far, in order of appearance."""
        return sorted(self.tracks + self.ended, key=lambda tr: tr.id)
