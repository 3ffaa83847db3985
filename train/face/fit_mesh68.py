"""Fit the Face Mesh -> 68-point mapping on UTKFace training crops and the mesh's template
(``faceage/face/mesh68_utkface.json``).

faceage's canonical frame is the mean of dlib's 68 points on UTKFace crops (``align.TEMPLATE_68``); the
detector now gives the 468-point Face Mesh. Each of the 68 points is written as a weighted sum of the
``K`` mesh points nearest it on average (weights summing to 1, least squares over the fitting crops), so
on frontal faces the mapped points sit where dlib's would and the template keeps its meaning, while on a
turned face they follow the mesh, which stays on the face.

1. N training crops spread evenly over the split (never the test split);
2. on each: dlib's 68 points (``train/eval/dlib_reference.py``) and the mesh of the face nearest the centre;
3. the first half fits the weights, the second half reports the held-out error (px, 200-px frame);
4. the mean mesh of the first half is the mesh's template; alignment fits its ``--align-points`` steadiest
   points (the nearest their mean: eyes, nose, brows; not the jaw line, not the lips).

    PYTHONPATH=. python train/face/fit_mesh68.py          # N = 1000, K = 4
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.data.utkface import SOURCE_SIZE, UTKFace  # noqa: E402
from faceage.face.detect import find_meshes  # noqa: E402
from faceage.face.mesh import MAPPING_FILE  # noqa: E402
from faceage.io import load_image  # noqa: E402
from train.eval.dlib_reference import dlib_landmarks  # noqa: E402
from train.face.measure_template import spread  # noqa: E402


def collect(faces: UTKFace, positions) -> tuple[np.ndarray, np.ndarray]:
    """(mesh points [F, 468, 2], dlib points [F, 68, 2]) of the crops where both found the face."""
    meshes, refs = [], []
    centre = np.array([SOURCE_SIZE / 2, SOURCE_SIZE / 2])
    for i, position in enumerate(positions, 1):
        img = load_image(faces.read_bytes(position))
        ref, found = dlib_landmarks(img), find_meshes(img)
        if ref is not None and found:
            _, _, mesh = min(found, key=lambda f: np.hypot(*((f[0][:2] + f[0][2:]) / 2 - centre)))
            meshes.append(mesh.points[:, :2])
            refs.append(ref)
        if i % 200 == 0:
            print(f"  {i}/{len(positions)} crops, {len(refs)} with both", flush=True)
    return np.stack(meshes).astype(np.float64), np.stack(refs)


def fit(meshes: np.ndarray, refs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """index [68, k], weight [68, k]: each reference point as a sum-to-1 combination of k mesh points."""
    index, weight = [], []
    for j in range(refs.shape[1]):
        near = np.argsort(np.linalg.norm(meshes - refs[:, j : j + 1], axis=-1).mean(0))[:k]
        # sum w = 1: w = e_0 + B v with B the differences to the first candidate; least squares in v
        p = meshes[:, near]  # [F, k, 2]
        a = (p[:, 1:] - p[:, :1]).transpose(0, 2, 1).reshape(-1, k - 1)
        b = (refs[:, j] - p[:, 0]).reshape(-1)
        v = np.linalg.lstsq(a, b, rcond=None)[0]
        index.append(near)
        weight.append(np.concatenate([[1 - v.sum()], v]))
    return np.array(index), np.array(weight)


def mirror_map(template: np.ndarray) -> np.ndarray:
    """For each mesh point, its mirror image across the face's midline (matched on the mirrored template)."""
    from scipy.optimize import linear_sum_assignment

    mirrored = template * [-1, 1]
    mirrored[:, 0] += 2 * template[:, 0].mean()
    return linear_sum_assignment(np.linalg.norm(template[:, None] - mirrored[None], axis=-1))[1]


def apply(meshes: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return (meshes[:, index] * weight[None, ..., None]).sum(2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="training crops (default 1000)")
    parser.add_argument("-k", type=int, default=4, help="mesh points per landmark (default 4)")
    parser.add_argument("--align-points", type=int, default=100, help="mesh points alignment fits (default 100)")
    parser.add_argument("--root", type=Path, default=None, help="UTKFace folder (default: shared/data/utkface)")
    parser.add_argument("--out", type=Path, default=MAPPING_FILE)
    args = parser.parse_args(argv)

    faces = UTKFace(args.root, "train", verify=False)
    meshes, refs = collect(faces, spread(len(faces), args.n))
    half = len(refs) // 2
    index, weight = fit(meshes[:half], refs[:half], args.k)
    err = np.linalg.norm(apply(meshes[half:], index, weight) - refs[half:], axis=-1)  # [F, 68]
    nearest = np.linalg.norm(meshes[half:][:, index[:, 0]] - refs[half:], axis=-1)
    template = meshes[:half].mean(0)
    steady = np.argsort(np.linalg.norm(meshes[:half] - template, axis=-1).mean(0))[: args.align_points]
    record = {
        "format": "faceage.mesh68",
        "version": 1,
        "what": "each iBUG 68-point landmark = sum_k weight[j][k] * mesh point index[j][k] "
        "(MediaPipe Face Mesh, 468 points)",
        "reference": "dlib HOG + shape_predictor_68_face_landmarks.dat on UTKFace training crops "
        "(train/eval/dlib_reference.py)",
        "fitted_on": f"{half} UTKFace training crops spread evenly over the split; held out: {len(refs) - half}",
        "measured_on": datetime.date.today().isoformat(),
        "held_out_error_px_200": {
            "mean": round(float(err.mean()), 3),
            "median": round(float(np.median(err)), 3),
            "inner51_mean": round(float(err[:, 17:].mean()), 3),
            "jaw_mean": round(float(err[:, :17].mean()), 3),
            "nearest_single_point_mean": round(float(nearest.mean()), 3),
        },
        "align_points_rule": f"the {args.align_points} mesh points nearest their mean on the fitting crops",
        "template": [[round(float(x), 3), round(float(y), 3)] for x, y in template],
        "align_points": sorted(int(i) for i in steady),
        "mirror": mirror_map(template).tolist(),
        "index": index.tolist(),
        "weight": [[round(float(w), 5) for w in row] for row in weight],
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(
        f"{len(refs)} crops with both; held-out error {err.mean():.2f} px mean (inner 51: {err[:, 17:].mean():.2f}, "
        f"jaw: {err[:, :17].mean():.2f}; nearest single mesh point: {nearest.mean():.2f}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
