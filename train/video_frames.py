"""The README's video before/after: a few frames of a clip and of its edit, in one PNG.

    PYTHONPATH=. python train/video_frames.py [-o docs/video_frames.png] [--age 70]

The clip is made from the committed real photo ``train/real_photos/smile.jpg`` (moved, zoomed, turned and
brightened: ``train/video_clips.py``), edited by ``faceage.video`` on the detail path; the top row is the
input, the bottom row the output, frames 0, 1/3, 2/3 and the last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceage.io import save_png  # noqa: E402
from faceage.video import VideoEditor  # noqa: E402
from faceage.video.io import read_frames  # noqa: E402
from train.video_clips import moving_photo, write_clip  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, default=Path("docs/video_frames.png"))
    p.add_argument("--age", type=float, default=70)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "in.mp4", moving_photo(30, (400, 300)), fps=10)
        result = VideoEditor.load(device="cpu").edit(clip, Path(tmp) / "out.mp4", a.age)
        before = [f for f, _ in read_frames(clip)]
        after = [f for f, _ in read_frames(result.path)]
    pick = [0, 10, 20, 29]
    sheet = np.vstack([np.hstack([before[i] for i in pick]), np.hstack([after[i] for i in pick])])
    save_png(
        sheet,
        a.output,
        {
            "about": f"faceage video: frames {pick} of a clip (top) and aged to {a.age:g} (bottom)",
            "summary": result.summary(),
        },
    )
    print(f"{a.output}: {result.summary()}")


if __name__ == "__main__":
    main()
