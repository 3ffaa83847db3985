"""Face pipeline benchmark: detection rate and alignment error on the UTKFace test split.

Three measurements:

1. **Detection rate** of :func:`faceage.face.detect.detect_faces` on UTKFace test crops
   (each holds exactly one face), with the time per crop (detection + 68 landmarks).
2. **Re-alignment error.** A UTKFace crop is already in the canonical frame, so aligning it
   with its own landmarks should give the identity. For each landmark subset of
   :data:`faceage.face.align.LANDMARK_SUBSETS` it prints how far the four corners of the
   200 x 200 crop move under the fitted transform (per face: mean and max of the four
   corners; over faces: mean, median, 95th percentile, max). The template was measured on
   the *training* split, so this is a held-out figure.
3. **Synthetic photos.** A test crop is scaled, rotated and pasted into a larger
   background made in memory (small 360 px canvases exercise the upsampled search, 3000 px
   ones the downscaled one). The landmarks found in the photo, mapped back through the
   known transform, are compared with those found on the crop itself (px of the 200-px
   frame), and so is the alignment: corner displacement between the photo's alignment
   composed with the known transform and the crop's own alignment.

    PYTHONPATH=. python train/bench/face_detection.py --limit 500
    PYTHONPATH=. python train/bench/face_detection.py              # all 2,356 test crops

``--limit N`` takes N crops spread evenly over the split (it is in name order, i.e. by age).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.data.utkface import SOURCE_SIZE, UTKFace  # noqa: E402
from faceage.face.align import (  # noqa: E402
    LANDMARK_SUBSETS,
    alignment_matrix,
    mesh_alignment_matrix,
    transform_points,
)
from faceage.face.detect import detect_faces  # noqa: E402
from faceage.io import load_image  # noqa: E402

CORNERS = np.array([[0, 0], [SOURCE_SIZE - 1, 0], [0, SOURCE_SIZE - 1], [SOURCE_SIZE - 1, SOURCE_SIZE - 1]], float)

# (scale of the 200-px crop, rotation in degrees, canvas width, canvas height)
SYNTHETIC_SCENES = [
    (0.55, 0.0, 360, 300),
    (0.8, -12.0, 480, 400),
    (1.0, 10.0, 640, 480),
    (1.5, -5.0, 1024, 768),
    (2.5, -15.0, 1600, 1200),
    (3.0, 25.0, 2400, 1800),
    (4.0, 20.0, 3000, 2200),
    (6.0, -8.0, 3000, 2200),
]


def corner_displacement(matrix: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Distances (px) the 4 crop corners move under ``matrix`` vs ``reference`` (identity)."""
    target = CORNERS if reference is None else transform_points(reference, CORNERS)
    return np.hypot(*(transform_points(matrix, CORNERS) - target).T)


def summary(values: np.ndarray) -> str:
    """mean / median / p95 / max of an array, in px."""
    v = np.asarray(values, float)
    return f"mean {v.mean():5.2f}  median {np.median(v):5.2f}  p95 {np.percentile(v, 95):5.2f}  max {v.max():5.2f} px"


def central_face(faces, shape):
    """The detected face nearest the image centre (UTKFace crops hold one face)."""
    cx, cy = shape[1] / 2, shape[0] / 2
    return min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy))


def detect_split(faces: UTKFace, positions: list[int]):
    """Detect on each test crop; returns ({position: landmarks}, seconds per crop)."""
    found, seconds = {}, 0.0
    for position in positions:
        img = load_image(faces.read_bytes(position))
        start = time.perf_counter()
        detected = detect_faces(img)
        seconds += time.perf_counter() - start
        if detected:
            found[position] = central_face(detected, img.shape)
    return found, seconds / max(1, len(positions))


def report_realignment(found: dict) -> None:
    """Section 2: corner displacement of the re-alignment, per landmark subset."""
    print(f"\nre-alignment of test crops with their own landmarks (identity is ideal), n={len(found)}:")
    fits = {"mesh": lambda f: mesh_alignment_matrix(f.mesh, SOURCE_SIZE)} | {
        subset: lambda f, subset=subset: alignment_matrix(f.landmarks, SOURCE_SIZE, subset)
        for subset in LANDMARK_SUBSETS
    }
    for name, fit in fits.items():
        disp = np.array([corner_displacement(fit(face)) for face in found.values()])
        mark = "  <- align_face (mesh points)" if name == "mesh" else ""
        print(f"  {name:16s} per-face mean corner: {summary(disp.mean(1))}; worst corner max {disp.max():5.1f}{mark}")


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field: gradients plus blurred noise, uint8 (H, W, 3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = (
        rng.uniform(40, 200, 3)
        + rng.uniform(-60, 60, 3) * (xx / width)[..., None]
        + rng.uniform(-60, 60, 3) * (yy / height)[..., None]
    )
    coarse = rng.normal(0, 20, (height // 150 + 2, width // 150 + 2, 3)).astype(np.float32)
    noise = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def place_crop(
    crop: np.ndarray, scale: float, angle: float, width: int, height: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``crop`` scaled and rotated about a random centre; returns (photo, crop->photo 2x3)."""
    half = scale * SOURCE_SIZE * 0.75
    centre = (rng.uniform(half, max(half + 1, width - half)), rng.uniform(half, max(half + 1, height - half)))
    rot = cv2.getRotationMatrix2D(((SOURCE_SIZE - 1) / 2, (SOURCE_SIZE - 1) / 2), angle, scale)
    rot[:, 2] += np.array(centre) - (SOURCE_SIZE - 1) / 2
    photo = background(width, height, rng)
    face = cv2.warpAffine(crop, rot, (width, height), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.full(crop.shape[:2], 255, np.uint8), rot, (width, height), flags=cv2.INTER_NEAREST)
    photo[inside > 0] = face[inside > 0]
    return photo, rot


def synthetic_trial(crop: np.ndarray, crop_face, scene: tuple, rng) -> dict:
    """One synthetic photo: detection, landmark error and alignment error vs the crop's own."""
    scale, angle, width, height = scene
    photo, to_photo = place_crop(crop, scale, angle, width, height, rng)
    start = time.perf_counter()
    detected = detect_faces(photo)
    result = {"ms": 1000 * (time.perf_counter() - start), "found": False, "extra": max(0, len(detected) - 1)}
    centre = transform_points(to_photo, [[(SOURCE_SIZE - 1) / 2] * 2])[0]
    hits = [f for f in detected if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]
    if not hits:
        return result
    face = hits[0]
    landmarks = transform_points(cv2.invertAffineTransform(to_photo), face.landmarks)
    # alignment from the photo, expressed on the crop: (photo -> canonical) o (crop -> photo)
    composed = mesh_alignment_matrix(face.mesh, SOURCE_SIZE) @ np.vstack([to_photo, [0, 0, 1]])
    corners = corner_displacement(composed, mesh_alignment_matrix(crop_face.mesh, SOURCE_SIZE))
    result.update(
        found=True,
        extra=len(detected) - 1,
        landmarks=np.hypot(*(landmarks - crop_face.landmarks).T).mean(),
        corners=corners.mean(),
        corners_max=corners.max(),
    )
    return result


def report_synthetic(faces: UTKFace, found: dict, per_scene: int, seed: int) -> None:
    """Section 3: detection, landmark and alignment error on synthetic full-size photos."""
    rng = np.random.default_rng(seed)
    n = per_scene * len(SYNTHETIC_SCENES)
    keys = list(found)[:: max(1, len(found) // n)][:n]
    print(
        f"\nsynthetic photos: a test crop scaled/rotated into a background, {per_scene} per scene; errors in px "
        "of the 200-px frame (landmarks: mean over points vs the crop's own; alignment: mean corner displacement)"
    )
    everything = []
    for i, scene in enumerate(SYNTHETIC_SCENES):
        trials = [
            synthetic_trial(load_image(faces.read_bytes(k)), found[k], scene, rng)
            for k in keys[i * per_scene : (i + 1) * per_scene]
        ]
        everything += trials
        print(
            f"  {scene[2]}x{scene[3]} face {scene[0] * SOURCE_SIZE:4.0f}px rot {scene[1]:+5.1f}: "
            + synthetic_summary(trials)
        )
    print(f"  all scenes: {synthetic_summary(everything)}")


def synthetic_summary(trials: list[dict]) -> str:
    """One line of figures for a list of ``synthetic_trial`` results."""
    hits = [t for t in trials if t["found"]]
    line = f"found {len(hits)}/{len(trials)}, false {sum(t['extra'] for t in trials)}"
    if hits:
        corners = [t["corners"] for t in hits]
        line += (
            f", landmarks {np.mean([t['landmarks'] for t in hits]):5.2f}, alignment mean {np.mean(corners):5.2f} "
            f"median {np.median(corners):5.2f} max {np.max([t['corners_max'] for t in hits]):5.2f}"
        )
    return line + f", {np.mean([t['ms'] for t in trials]):4.0f} ms/photo"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="test crops used (default: the whole split)")
    parser.add_argument("--root", default=None, help="UTKFace folder (default: shared/data/utkface)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic photos")
    parser.add_argument("--per-scene", type=int, default=4, help="synthetic photos per scene (default 4)")
    args = parser.parse_args(argv)

    faces = UTKFace(args.root, "test", verify=False)
    count = len(faces) if args.limit is None else min(args.limit, len(faces))
    positions = np.unique(np.linspace(0, len(faces) - 1, num=count).round().astype(int)).tolist()
    found, seconds = detect_split(faces, positions)
    print(
        f"detection on UTKFace test crops: {len(found)}/{len(positions)} = {100 * len(found) / len(positions):.1f}%"
        f", {1000 * seconds:.1f} ms/crop (detection + 68 landmarks, 200x200)"
    )
    report_realignment(found)
    report_synthetic(faces, found, args.per_scene, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
