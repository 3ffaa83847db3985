"""The ``faceage`` command line.

    faceage edit photo.jpg --age 70 --sigma-m 8 --sigma-g 4.5 -o out.png
    faceage edit photo.jpg --age 70 --source-age 45 -o out.png   # the face's own age, when C reads it wrong
    faceage edit photo.jpg --age 70 --mode replace -o out.png    # paste the generated face, not its change
    faceage edit photos/ --age 70 -o aged/            # a folder, with a progress bar
    faceage mask photo.jpg -o mask.png                 # the CUSP mask M of the (first) face
    faceage progression photo.jpg --ages 10 30 50 70 -o strip.png [--gif ages.gif] [--mp4 ages.mp4]
    faceage amgan photo.jpg --age 60 --sign forehead=0.8 -o out.png   # AgingMapGAN: faceage.cli.amgan
    faceage amgan photo.jpg --map painted.png -o out.png               # a painted map (from amgan-map)
    faceage video in.mp4 --age 70 -o out.mp4                          # a clip: faceage.cli.video

Exit codes: 0 ok, 2 bad usage or bad input (one line on stderr says what and what to do),
3 missing weights, 4 some files of a folder failed (one line per file). No traceback for any of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from faceage.cli import amgan as cli_amgan
from faceage.cli import video as cli_video
from faceage.cli.how import add_how, add_sigmas, edit_how
from faceage.cli.paths import inputs, output_names, side_output
from faceage.cusp.editor import CUSPEditor, check_age, check_controls
from faceage.edit import progression as prog
from faceage.edit.progression import DEFAULT_AGES
from faceage.errors import FaceAgeError, MissingWeightsError
from faceage.io import save_png
from faceage.provenance import edit_metadata, model_metadata


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other faceage error."""

    def error(self, message):
        self.exit(2, f"faceage: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="faceage", description="Face age editing (CUSP, AgingMapGAN).")
    p.add_argument("--weights", help="the command's model weights (.safetensors); default: the shipped assets/ file")
    p.add_argument("--device", default="auto", help="auto (default: CUDA when present, else CPU), cpu or cuda")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("input", type=Path, help="a photo, or a folder of photos")
        sp.add_argument("-o", "--output", type=Path, required=True, help="output file (or folder)")
        sp.add_argument("--face", type=int, default=None, help="only this face (0 = largest); default all")

    e = sub.add_parser("edit", help="age the faces of a photo and paste them back")
    common(e)
    e.add_argument("--age", type=float, required=True, help="target age, 0..100")
    add_sigmas(e)
    add_how(e)
    m = sub.add_parser("mask", help="save the CUSP mask M of the first chosen face")
    common(m)
    g = sub.add_parser("progression", help="a strip of the aligned face at several ages")
    common(g)
    g.add_argument("--ages", type=float, nargs="+", default=list(DEFAULT_AGES))
    add_sigmas(g)
    add_how(g)
    g.add_argument(
        "--gif",
        type=Path,
        help="also write an animated GIF across the ages (for a folder of "
        "photos: a folder, one <name>.gif in it for each photo)",
    )
    g.add_argument(
        "--mp4",
        type=Path,
        help="also write an MP4 across the ages (if OpenCV has an encoder; for a "
        "folder of photos: a folder, one <name>.mp4 in it for each photo)",
    )
    cli_amgan.add_commands(sub, common, add_how)
    cli_video.add_command(sub)
    return p


def _problem(src: Path, e: Exception) -> str:
    """The one stderr line for a failed input (its path is added unless the message names it)."""
    text = str(e)
    return f"faceage: {text}" if str(src) in text else f"faceage: {src}: {text}"


def _run_one(editor, args, src: Path, dst: Path) -> None:
    if args.cmd in cli_amgan.COMMANDS:
        return cli_amgan.run_one(editor, args, src, dst)
    session = editor.open(src, face_index=args.face)
    how = edit_how(session, args, src)
    if args.cmd == "edit":
        out = session.edit(args.age, args.sigma_m, args.sigma_g, **how)
        save_png(
            out,
            dst,
            edit_metadata(
                editor, args.age, args.sigma_m, args.sigma_g, args.face, source=src.name, **session.how(**how)
            ),
        )
    elif args.cmd == "mask":
        gray = (session.mask_images()[0] * 255).round().astype(np.uint8)
        save_png(np.repeat(gray[..., None], 3, axis=2), dst, model_metadata(editor, args.face, source=src.name))
    else:
        frames = prog.progression(session, args.ages, args.sigma_m, args.sigma_g, **how)
        save_png(
            prog.strip(frames),
            dst,
            edit_metadata(
                editor,
                args.ages,
                args.sigma_m,
                args.sigma_g,
                prog.shown_face(args.face),
                source=src.name,
                **session.how(**how),
            ),
        )
        if args.gif:
            prog.save_gif(frames, side_output(args, "gif", dst))
        if args.mp4 and prog.save_mp4(frames, side_output(args, "mp4", dst)) is None:
            raise FaceAgeError(f"no MP4 encoder in this OpenCV: {args.mp4} not written (use --gif)")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "video":
        return cli_video.run(args)
    amgan = args.cmd in cli_amgan.COMMANDS
    try:
        for a in getattr(args, "source_age", None) or []:
            check_age(a, "--source-age")
        if amgan:  # bad controls are refused before any photo is read
            cli_amgan.check_args(args)
        elif args.cmd != "mask":
            for age in args.ages if args.cmd == "progression" else [args.age]:
                check_controls(age, args.sigma_m, args.sigma_g)
        files = inputs(args)  # every path checked before the weights are loaded
        editor = cli_amgan.load_editor(args) if amgan else CUSPEditor.load(args.weights, device=args.device)
    except MissingWeightsError as e:
        print(f"faceage: {e}", file=sys.stderr)
        return 3
    except FaceAgeError as e:
        print(f"faceage: {e}", file=sys.stderr)
        return 2
    if len(files) == 1 and not args.input.is_dir():
        try:
            _run_one(editor, args, files[0], args.output)
        except (FaceAgeError, OSError) as e:  # OSError: unreadable input, unwritable output
            print(_problem(files[0], e), file=sys.stderr)
            return 2
        return 0
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"faceage: cannot make the output folder {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    failed = 0
    for f, name in zip(tqdm(files, desc=args.cmd), output_names(files)):
        try:
            _run_one(editor, args, f, args.output / name)
        except (FaceAgeError, OSError) as e:
            failed += 1
            tqdm.write(_problem(f, e), file=sys.stderr)
    return 4 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
