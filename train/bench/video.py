"""Video editing speed end to end (decode, track, edit, encode) and flicker: prints figures, asserts nothing.

    PYTHONPATH=. python train/bench/video.py [--size 1280x720] [--seconds 4] [--fps 30] [--threads 2]
        [--mode detail|replace] [--sign NAME=SCORE ...] [--renderer cusp|amgan]

(a) a moving clip: a real photo (``train/real_photos/smile.jpg``, one face) moved, zoomed, turned and
    brightened over ``--seconds`` at ``--fps``, ``--size`` pixels, with a sine AAC track; edited to age 70 on
    the detail path: frames/s end to end and ms per frame per stage (``faceage.video.edit.STAGES``);
(b) a still clip (the same photo, still, with camera-like noise kept by a lossless encode): the flicker
    measure (``faceage.video.edit.Flicker``): the edit's frame-to-frame change on the face's static pixels
    over the input's own.
The clips are made first (not timed) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.cli.amgan import parse_sign  # noqa: E402
from faceage.video import VideoEditor  # noqa: E402
from faceage.video.edit import RENDERERS  # noqa: E402
from train.video_clips import moving_photo, write_clip  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1280x720")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", default="detail")
    p.add_argument("--sign", type=parse_sign, action="append", default=[], help="per sign, as faceage video --sign")
    p.add_argument("--renderer", default="cusp", choices=RENDERERS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.split("x"))
    n = round(a.seconds * a.fps)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {a.threads}; "
        f"{w}x{h}, {n} frames at {a.fps} frames/s, mode {a.mode}, renderer {a.renderer}, signs {dict(a.sign)}"
    )
    ved = VideoEditor.load(device="cpu", renderer=a.renderer)
    how = dict(mode=a.mode, signs=dict(a.sign))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        moving = write_clip(tmp / "moving.mp4", moving_photo(n, (w, h)), fps=a.fps, audio_hz=440)
        still = write_clip(
            tmp / "still.mp4", moving_photo(min(n, 60), (w, h), still=True, noise=3), fps=a.fps, lossless=True
        )
        ved.edit(moving, tmp / "warm.mp4", 70, seconds=0.2)  # model load and first-call costs, not timed
        t = time.perf_counter()
        r = ved.edit(moving, tmp / "out.mp4", 70, **how)
        wall = time.perf_counter() - t
        print(f"(a) moving clip: {r.frames} frames in {wall:.2f} s = {r.frames / wall:.1f} frames/s end to end")
        for k, v in r.stages.items():
            print(f"    {k:8s} {v:6.1f} ms/frame")
        print(
            f"    total    {sum(r.stages.values()):6.1f} ms/frame; tracks {len(r.tracks)}, "
            f"detector runs {r.detections}; {r.flicker}"
        )
        s = ved.edit(still, tmp / "still_out.mp4", 70, **how)
        print(f"(b) still clip, {s.frames} frames: {s.flicker}")


if __name__ == "__main__":
    main()
