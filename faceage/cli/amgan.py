"""The per-sign commands of the ``faceage`` command line (the parser and batch loop are in faceage.cli.main).

``faceage map`` renders an aging map with CUSP's decodes (``faceage.cusp.map_render``, what the app's per-sign tab
does by default); ``faceage amgan`` with the AgingMapGAN network.

    faceage map photo.jpg --age 50 --sign forehead=0.9 --sign nasolabial_left=0.8 -o out.png
    faceage map photo.jpg --map painted.png -o out.png --sigma-m 8 --sigma-g 4.5

    faceage amgan photo.jpg --age 60 --sign forehead=0.8 --sign nasolabial_left=0.5 -o out.png
    faceage amgan photo.jpg --map painted.png -o out.png          # a map painted by hand (Sec. 3.6)
    faceage amgan photo.jpg --age 60 -o out.png --save-map map.png   # also write the map it used
    faceage amgan photo.jpg --age 60 -o out.png --save-attention a.png  # and G's attention mask A
    faceage amgan photos/ --age 60 --sign forehead=1 -o aged/      # a folder, with a progress bar
    faceage amgan-map photo.jpg --age 60 --sign forehead=0.8 -o map.png   # the map to paint on

A map is a picture of the aligned face crop's size: brightness = score (0 = young, 255 = the most
marked sign, the rest of the face = the age), red = channel 0 (every sign but the lip corners),
green = channel 1 (the lip corners); a gray brush sets both. Signs: ``faceage.amgan.maps.SIGNS``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from faceage.amgan.editor import AMGANEditor, as_map, check_signs
from faceage.amgan.maps import SIGNS, map_to_image
from faceage.cli.how import add_sigmas, edit_how
from faceage.cli.paths import side_output
from faceage.cusp.editor import CUSPEditor, check_controls
from faceage.cusp.map_render import MapRenderer
from faceage.edit.photo_editor import check_age
from faceage.errors import FaceAgeError
from faceage.io import load_image, save_png
from faceage.provenance import amgan_metadata, model_metadata

COMMANDS = ("amgan", "amgan-map", "map")


def parse_sign(text: str) -> tuple[str, float]:
    """``name=score`` -> (name, score); the name is checked later against the known signs."""
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sign wants NAME=SCORE with SCORE in [0, 1] (e.g. forehead=0.8), got {text!r}"
        ) from None


def add_commands(sub, common, how) -> None:
    """Add ``amgan`` and ``amgan-map`` to the subcommands ``sub`` (``common`` adds input, -o, --face; ``how``
    adds --mode and --source-age)."""

    def targets(p):
        p.add_argument("--age", type=float, help="target age, 0..100 (the face outside the sign zones)")
        p.add_argument(
            "--sign",
            type=parse_sign,
            action="append",
            default=[],
            metavar="NAME=SCORE",
            help=f"a clinical sign's score in [0, 1], repeatable; signs: {', '.join(SIGNS)}",
        )

    def controls(p):
        targets(p)
        p.add_argument("--resolution", type=int, help="side of the aligned crop (default: the trained one)")

    a = sub.add_parser("amgan", help="age the faces with AgingMapGAN, per clinical sign or from a painted map")
    common(a)
    controls(a)
    how(a)
    a.add_argument("--map", type=Path, help="a painted aging map (from amgan-map) used instead of --age/--sign")
    a.add_argument("--save-map", type=Path, help="also write the map of the first face (a folder for a folder)")
    a.add_argument(
        "--save-attention",
        type=Path,
        help="also write G's attention mask A of the first face as a gray PNG (white: input kept; "
        "a folder for a folder)",
    )
    m = sub.add_parser("amgan-map", help="save the aging map of the first chosen face, to paint on")
    common(m)
    controls(m)
    r = sub.add_parser("map", help="age the faces per clinical sign (or from a painted map), rendered by CUSP")
    common(r)
    targets(r)
    r.add_argument("--map", type=Path, help="a painted aging map (from amgan-map) for the first face")
    add_sigmas(r)
    how(r)


def check_args(args) -> None:
    """Refuse bad controls before any photo is read; reads ``--map`` into ``args.painted``."""

    args.painted = None
    if getattr(args, "map", None) is not None:
        if args.sign:
            raise FaceAgeError("--map replaces --sign (the painted map holds the scores): give one or the other")
        args.painted = load_image(args.map)
        as_map(args.painted, args.painted.shape[0])  # square, 8-bit: checked before any photo is read
        if args.age is None and args.cmd == "map":
            raise FaceAgeError("map needs --age with --map: the age of the face outside the painted zones")
        args.age = 0.0 if args.age is None else args.age  # unused by amgan: the map holds the age
    if args.age is None:
        raise FaceAgeError(
            f"{args.cmd} needs --age (the target age, 0..100)" + (" or --map" if args.cmd == "amgan" else "")
        )
    check_age(args.age)
    args.signs = check_signs(dict(args.sign))
    if args.cmd == "map":
        check_controls(args.age, args.sigma_m, args.sigma_g)


def load_editor(args):
    if args.cmd == "map":
        return CUSPEditor.load(args.weights, device=args.device)

    return AMGANEditor.load(args.weights, device=args.device, resolution=args.resolution)


def run_one(editor, args, src: Path, dst: Path) -> None:
    """Edit (or export the map of) one photo ``src`` into ``dst``."""

    session = editor.open(src, face_index=args.face)
    how = edit_how(session, args, src)
    if args.cmd == "map":
        return _render_map(editor, session, args, src, dst, how)
    meta = amgan_metadata(
        editor,
        args.age,
        args.signs,
        args.face,
        painted=args.painted is not None,
        source=src.name,
        **(session.how(**how) if how else {}),
    )
    if args.cmd == "amgan-map":
        save_png(map_to_image(session.aging_map(args.age, args.signs)), dst, meta)
        return
    photo, attention = session.edit_with_attention(args.age, args.signs, painted_map=args.painted, **how)
    save_png(photo, dst, meta)
    if args.save_map:
        used = (
            as_map(args.painted, editor.resolution)
            if args.painted is not None
            else session.aging_map(args.age, args.signs)
        )
        save_png(map_to_image(used), side_output(args, "save_map", dst), meta)
    if args.save_attention:
        gray = np.round(np.clip(attention[0], 0, 1) * 255).astype(np.uint8)
        save_png(np.repeat(gray[..., None], 3, axis=2), side_output(args, "save_attention", dst), meta)


def _render_map(editor, session, args, src: Path, dst: Path, how: dict) -> None:
    """``faceage map``: the sliders' (or the painted) map of each face rendered by CUSP's decodes."""

    painted = None if args.painted is None else as_map(args.painted, editor.resolution)
    out = MapRenderer(session).render(args.age, args.signs, args.sigma_m, args.sigma_g, painted, **how)
    save_png(
        out,
        dst,
        model_metadata(
            editor,
            args.face,
            model="cusp_map",
            age=float(args.age),
            signs=dict(args.signs),
            painted_map=painted is not None,
            sigma_m=args.sigma_m,
            sigma_g=args.sigma_g,
            source=src.name,
            **session.how(**how),
        ),
    )
