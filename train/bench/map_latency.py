"""CPU latency of per-sign aging rendered by CUSP (``faceage/cusp/map_render.py``): prints figures, asserts nothing.

    PYTHONPATH=. python train/bench/map_latency.py [--photo train/real_photos/smile.jpg] [--n 30]

(a) the ladder for a new photo or sigma setting (11 decodes of one face, one batched pass), median of 5;
(b) one stroke or sign move on a photo resized to 1024 x 1024 (per-pixel age map, interpolation, detail
    paste-back; no network pass): p50/p95 over ``--n`` renders with a different sign score each time;
(c) a new target age (one more decode, then as (b)).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.cusp.editor import CUSPEditor  # noqa: E402
from faceage.cusp.map_render import RUNGS, MapRenderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def ms(ts) -> str:
    a = np.array(ts) * 1000
    return f"p50 {np.percentile(a, 50):6.1f} ms, p95 {np.percentile(a, 95):6.1f} ms (n={len(a)})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photo", type=Path, default=ROOT / "train" / "real_photos" / "smile.jpg")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ed = CUSPEditor.load()
    photo = np.asarray(Image.open(a.photo).convert("RGB").resize((1024, 1024), Image.LANCZOS))
    s = ed.open(photo)
    m = MapRenderer(s)
    m.render(60, {"forehead": 0.9}, 8, 4.5)  # warm-up: caches, first-call costs
    ladder = []
    for i in range(5):
        start = time.perf_counter()
        m._ladders.clear()
        m.ladder(0, 8.0, 4.5 + 0.01 * (i + 1))
        ladder.append(time.perf_counter() - start)
    print(f"photo {a.photo.name} at 1024 x 1024, {len(s.faces)} face(s), torch threads {a.threads}")
    print(f"(a) ladder of {len(RUNGS)} ages for one face: median {1000 * np.median(ladder):.0f} ms (5 runs)")
    m.ladder(0, 8.0, 4.5)
    strokes = []
    for i in range(a.n):
        start = time.perf_counter()
        m.render(60, {"forehead": (i % 10) / 10, "nasolabial_left": 0.8}, 8, 4.5)
        strokes.append(time.perf_counter() - start)
    print(f"(b) a stroke or sign move: {ms(strokes)}")
    ages = []
    for i in range(10):
        start = time.perf_counter()
        m.render(61 + i + 0.5, {"forehead": 0.9}, 8, 4.5)
        ages.append(time.perf_counter() - start)
    print(f"(c) a new target age: {ms(ages)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
