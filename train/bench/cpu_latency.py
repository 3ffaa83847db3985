"""CPU latency of the CUSP editor: prints figures, asserts nothing.

    PYTHONPATH=. python train/bench/cpu_latency.py [--weights assets/cusp_utkface128.safetensors] [--threads 2]

(a) slider path: a new target age / sigma on a photo already opened (skip blur + decoder), p50/p95
    over 50 edits, crop only and with paste-back into the full photo;
(b) new photo path on a 1024 x 1024 photo: load, detect, align, mask, encode, decode, paste back;
(c) the same decoder in a plain, uncached form (encoders + mask re-run on every slider move, default
    memory format where the editor uses channels_last), measured in the same run, so the speed-up is a ratio;
plus peak RSS. The photo is a UTKFace test face scaled into a 1024 x 1024 canvas (needs ../shared).
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.cusp_mask import blur_skip, cusp_mask  # noqa: E402
from faceage.editor import CUSPEditor, to_tensor  # noqa: E402


def percentiles(ts) -> str:
    a = np.array(ts) * 1000
    return f"p50 {np.percentile(a, 50):7.1f} ms   p95 {np.percentile(a, 95):7.1f} ms   (n={len(a)})"


def photo_1024() -> np.ndarray:
    from faceage.data.utkface import UTKFace

    face = UTKFace(split="test", size=200, verify=False).load(0)
    canvas = np.full((1024, 1024, 3), 90, np.uint8)
    canvas[212:812, 212:812] = np.asarray(Image.fromarray(face).resize((600, 600), Image.LANCZOS))
    return canvas


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=50)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ed = CUSPEditor.load(a.weights)
    photo = photo_1024()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{a.threads} threads, model {ed.resolution}px, date {time.strftime('%Y-%m-%d')}")

    t = time.perf_counter()
    session = ed.open(photo)
    session.edit(50, 8, 4.5)
    t_new = time.perf_counter() - t
    rng = np.random.default_rng(0)
    settings = [(float(rng.uniform(5, 80)), float(rng.uniform(0, 9)), float(rng.uniform(0, 9))) for _ in range(a.n)]

    def timed(fn):
        ts = []
        for s in settings:
            t0 = time.perf_counter()
            fn(*s)
            ts.append(time.perf_counter() - t0)
        return ts

    crop_ts = timed(lambda *s: session.edit_crops(*s))
    full_ts = timed(lambda *s: session.edit(*s))
    x = to_tensor(session.faces[0].aligned.crop, ed.device)

    plain_T = copy.deepcopy(ed.T).to(memory_format=torch.contiguous_format)  # the editor's T is channels_last

    def plain(age, sm, sg):  # no cache, default memory format: mask and encoders again on every slider move
        mask = cusp_mask(ed._classify, x)
        with torch.no_grad():
            c, f_c, s = plain_T.encode(x)
            plain_T.decode(c, blur_skip(f_c, mask, sm, sg), s, torch.tensor([age]))

    plain_ts = timed(plain)
    t = time.perf_counter()
    ed.open(photo).edit(50, 8, 4.5)
    t_new2 = time.perf_counter() - t
    print(f"(a) slider path, crop only      {percentiles(crop_ts)}")
    print(f"(a) slider path, with paste-back {percentiles(full_ts)}")
    print(f"(c) plain uncached slider move  {percentiles(plain_ts)}")
    print(f"    speed-up of the cache (p50): {np.median(plain_ts) / np.median(crop_ts):.2f}x")
    print(f"(b) new 1024x1024 photo: {t_new * 1000:.0f} ms (first, incl. model warm-up), {t_new2 * 1000:.0f} ms (second)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
