"""How an edit reaches the photo, as the command line sets it for both models: ``--mode`` (detail or replace)
and ``--source-age`` (the face's own age), and what the user is told about the faces on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

from faceage.cusp.mask import PRESETS
from faceage.edit.photo_editor import DEFAULT_MODE, MODES


def add_how(sp, medium: str = "photo", order: str = "largest first") -> None:
    """The ``--mode`` and ``--source-age`` options of a command that edits a ``medium`` whose faces are numbered
    in ``order``."""
    sp.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help=f"detail (default): apply the model's change to the {medium}'s own pixels, keeping its "
        "detail, expression and colour; replace: paste the generated face",
    )
    sp.add_argument(
        "--source-age",
        type=float,
        nargs="+",
        default=None,
        metavar="AGE",
        help=f"the face's own age (detail mode), one for every face or one per face ({order}); default: as the "
        "age classifier reads it, printed on stderr",
    )


def add_sigmas(sp) -> None:
    """CUSP's ``--sigma-m`` and ``--sigma-g`` (the skip blur inside and outside the mask M), defaulting to the
    app's "custom preservation" preset."""
    sigma_m, sigma_g = PRESETS["custom preservation"]
    sp.add_argument("--sigma-m", type=float, default=sigma_m, help="local blur in the mask (paper units, 0..9)")
    sp.add_argument("--sigma-g", type=float, default=sigma_g, help="global blur (paper units, 0..9)")


def edit_how(session, args, src: Path) -> dict:
    """The ``mode`` and ``source_age`` keywords of an edit from ``--mode`` and ``--source-age`` (checked against
    the photo's faces); in detail mode, the ages the edit starts from go to stderr (C can be 10-20 years off)."""
    for note in session.notes:
        print(f"faceage: {src.name}: {note}", file=sys.stderr)
    if getattr(args, "mode", None) is None:
        return {}
    ages = args.source_age
    source = None if ages is None else ages[0] if len(ages) == 1 else list(ages)
    if args.mode == "detail":
        used = session.source_ages(source)
        said = "as given" if ages is not None else "as read by the age classifier; set --source-age if wrong"
        print(f"faceage: {src.name}: face ages {', '.join(f'{a:g}' for a in used)} ({said})", file=sys.stderr)
    return {"mode": args.mode, "source_age": source}
