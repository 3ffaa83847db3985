"""The ``faceage video`` command: age the faces of a clip (``faceage.video``).

    faceage video in.mp4 --age 70 -o out.mp4
    faceage video in.mp4 --age 70 --face 0 --source-age 40 --mode detail --sigma-m 8 --sigma-g 4.5 -o out.mp4
    faceage video in.mp4 --age 70 --seconds 1 -o preview.mp4     # the first second only

A progress bar shows frames/s; the end prints where the time went (ms per frame per stage) and the
flicker measure. Exit codes as ``faceage.cli``: 2 bad input (one line), 3 missing weights, 130 interrupted
(nothing is left at the output path in any of these cases).
"""

from __future__ import annotations

import sys
from pathlib import Path

from faceage.cli.how import add_how, add_sigmas
from faceage.cusp.editor import check_controls
from faceage.errors import FaceAgeError, MissingWeightsError
from faceage.video import VideoEditor
from faceage.video.io import check_output, probe


def add_command(sub) -> None:
    """The ``video`` subparser."""
    v = sub.add_parser("video", help="age the faces of a video (MP4 out, audio kept)")
    v.add_argument("input", type=Path, help="a video file (MP4, MOV, WebM, MKV...)")
    v.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 (H.264, the input's audio)")
    v.add_argument("--age", type=float, required=True, help="target age, 0..100")
    add_sigmas(v)
    add_how(v, medium="video", order="in order of appearance")
    v.add_argument(
        "--face",
        type=int,
        default=None,
        help="only this face (faces are numbered as they appear, largest first: 0 = the first); default all",
    )
    v.add_argument("--seconds", type=float, default=None, help="only the first SECONDS of the clip (a preview)")


def run(args) -> int:
    """Run ``faceage video``; the exit code."""
    from tqdm import tqdm

    ages = args.source_age
    source = None if ages is None else ages[0] if len(ages) == 1 else list(ages)
    bar = None
    try:
        check_controls(args.age, args.sigma_m, args.sigma_g)
        check_output(args.output)
        info = probe(args.input)  # a bad file is refused before the weights load
        print(f"faceage: {args.input.name}: {info.describe()}", file=sys.stderr)
        editor = VideoEditor.load(args.weights, device=args.device)
        bar = tqdm(total=info.frames, unit="frame", desc="video")

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        result = editor.edit(
            args.input,
            args.output,
            args.age,
            args.sigma_m,
            args.sigma_g,
            args.mode,
            source,
            args.face,
            args.seconds,
            progress=progress,
        )
    except MissingWeightsError as e:
        print(f"faceage: {e}", file=sys.stderr)
        return 3
    except (FaceAgeError, OSError) as e:
        if bar is not None:
            bar.close()
        said = str(e)
        print(f"faceage: {said}" if args.input.name in said else f"faceage: {args.input.name}: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceage: interrupted: nothing was written", file=sys.stderr)
        return 130
    bar.close()
    print(f"faceage: {args.output}: {result.summary()}", file=sys.stderr)
    return 0
