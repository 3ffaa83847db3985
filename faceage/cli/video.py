"""The ``faceage video`` command: age the faces of a clip (``faceage.video``).

    faceage video in.mp4 --age 70 -o out.mp4
    faceage video in.mp4 --age 70 --face 0 --source-age 40 --mode detail --sigma-m 8 --sigma-g 4.5 -o out.mp4
    faceage video in.mp4 --age 70 --seconds 1 -o preview.mp4     # the first second only
    faceage video in.mp4 --age 60 --sign forehead=0.9 --sign nasolabial_left=0.8 -o out.mp4   # per sign (CUSP)
    faceage video in.mp4 --age 60 --map painted.png -o out.mp4    # a map painted on `faceage amgan-map`'s
    faceage video in.mp4 --age 60 --sign forehead=0.9 --renderer amgan -o out.mp4   # rendered by AgingMapGAN

A progress bar shows frames/s; the end prints where the time went (ms per frame per stage) and the
flicker measure. Exit codes as ``faceage.cli``: 2 bad input (one line), 3 missing weights, 130 interrupted
(nothing is left at the output path in any of these cases).
"""

from __future__ import annotations

import sys
from pathlib import Path

from faceage.amgan.editor import as_map, check_signs
from faceage.amgan.maps import SIGNS
from faceage.cli.amgan import parse_sign
from faceage.cli.how import add_how, add_sigmas
from faceage.cusp.editor import check_controls
from faceage.errors import FaceAgeError, MissingWeightsError
from faceage.io import load_image
from faceage.video import VideoEditor
from faceage.video.edit import RENDERERS
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
    v.add_argument(
        "--sign",
        type=parse_sign,
        action="append",
        default=[],
        metavar="NAME=SCORE",
        help=f"a clinical sign's score in [0, 1] (the rest of the face follows --age), repeatable; signs: "
        f"{', '.join(SIGNS)}",
    )
    v.add_argument("--map", type=Path, help="a painted aging map (from amgan-map) for every face, instead of --sign")
    v.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="cusp",
        help="cusp (default): CUSP by age, or the signs through its decodes; amgan: the AgingMapGAN network "
        "(ignores the sigmas)",
    )


def run(args) -> int:
    """Run ``faceage video``; the exit code."""
    from tqdm import tqdm

    ages = args.source_age
    source = None if ages is None else ages[0] if len(ages) == 1 else list(ages)
    bar = None
    try:
        signs, painted = _controls(args)
    except FaceAgeError as e:
        print(f"faceage: {e}", file=sys.stderr)
        return 2
    try:
        check_output(args.output)
        info = probe(args.input)  # a bad file is refused before the weights load
        print(f"faceage: {args.input.name}: {info.describe()}", file=sys.stderr)
        editor = VideoEditor.load(args.weights, device=args.device, renderer=args.renderer)
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
            signs=signs,
            painted_map=painted,
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


def _controls(args) -> tuple[dict, object]:
    """The checked age, sigmas, ``--sign`` scores and ``--map`` picture, before the video or weights are read."""
    check_controls(args.age, args.sigma_m, args.sigma_g)
    signs, painted = check_signs(dict(args.sign)), None
    if args.map is not None:
        if args.sign:
            raise FaceAgeError("--map replaces --sign (the painted map holds the scores): give one or the other")
        painted = load_image(args.map)
        as_map(painted, painted.shape[0])  # square, 8-bit
    return signs, painted
