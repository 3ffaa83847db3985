"""CPU latency of the CUSP editor: prints figures, asserts nothing.

    PYTHONPATH=. python train/bench/cpu_latency.py [--weights assets/cusp_utkface128.safetensors] [--threads 2]

(a) slider path: a new target age on a photo already opened (skip blur + decoder), p50/p95 over 50 edits,
    crop only, and into the full photo by each path: "replace" (the decoded face pasted back) and
    "detail" (the default: the change from the cached reconstruction at the face's own age, with flow and
    texture, applied to the photo's pixels); a sigma move also re-makes the reconstruction (timed apart);
(b) new photo path on a 1024 x 1024 photo: load, detect, align, mask, encode, C's age, decode, paste, by path;
(c) the same decoder in a plain, uncached form (encoders + mask re-run on every slider move, default
    memory format where the editor uses channels_last), measured in the same run, so the speed-up is a ratio;
plus peak RSS. The photo is a UTKFace test face scaled into a 1024 x 1024 canvas (needs ../shared), or
``--photo`` resized to 1024 x 1024.
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

from faceage.cusp.editor import CUSPEditor, to_tensor  # noqa: E402
from faceage.cusp.mask import blur_skip, cusp_mask  # noqa: E402


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
    p.add_argument("--photo", type=Path, default=None, help="a photo with one face (default: a UTKFace test face)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ed = CUSPEditor.load(a.weights)
    photo = photo_1024() if a.photo is None else np.asarray(Image.open(a.photo).convert("RGB").resize((1024, 1024)))
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{a.threads} threads, model {ed.resolution}px, date {time.strftime('%Y-%m-%d')}"
    )

    t = time.perf_counter()
    session = ed.open(photo)
    session.edit(50, 8, 4.5)
    t_new = time.perf_counter() - t
    rng = np.random.default_rng(0)
    settings = [(float(rng.uniform(5, 80)), 8.0, 4.5) for _ in range(a.n)]  # an age slider at the default preset

    def timed(fn):
        ts = []
        for s in settings:
            t0 = time.perf_counter()
            fn(*s)
            ts.append(time.perf_counter() - t0)
        return ts

    crop_ts = timed(lambda *s: session.edit_crops(*s))
    full_ts = {mode: timed(lambda *s, mode=mode: session.edit(*s, mode=mode)) for mode in ("replace", "detail")}
    sigma_ts = []  # a sigma slider in detail mode: the edit and a new reconstruction
    for i in range(a.n):
        t0 = time.perf_counter()
        session.edit(50, 8, 0.05 * (i + 1))
        sigma_ts.append(time.perf_counter() - t0)
    x = to_tensor(session.faces[0].aligned.crop, ed.device)

    plain_T = copy.deepcopy(ed.T).to(memory_format=torch.contiguous_format)  # the editor's T is channels_last

    def plain(age, sm, sg):  # no cache, default memory format: mask and encoders again on every slider move
        mask = cusp_mask(ed._classify, x)
        with torch.no_grad():
            c, f_c, s = plain_T.encode(x)
            plain_T.decode(c, blur_skip(f_c, mask, sm, sg), s, torch.tensor([age]))

    plain_ts = timed(plain)
    t_new2 = {}
    for mode in ("replace", "detail"):
        t = time.perf_counter()
        ed.open(photo).edit(50, 8, 4.5, mode=mode)
        t_new2[mode] = time.perf_counter() - t
    print(f"(a) age slider, crop only          {percentiles(crop_ts)}")
    for mode, ts in full_ts.items():
        print(f"(a) age slider, {mode:7s} into photo {percentiles(ts)}")
    print(f"(a) sigma slider, detail (+recon)  {percentiles(sigma_ts)}")
    print(f"(c) plain uncached slider move  {percentiles(plain_ts)}")
    print(f"    speed-up of the cache (p50): {np.median(plain_ts) / np.median(crop_ts):.2f}x")
    print(
        f"(b) new 1024x1024 photo: {t_new * 1000:.0f} ms (first, detail, incl. model warm-up); then "
        + ", ".join(f"{m} {v * 1000:.0f} ms" for m, v in t_new2.items())
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
