"""Where the ``faceage`` command line reads and writes: the photos of an input, each one's result name,
and the side outputs (a progression's ``--gif`` / ``--mp4``, AMGAN's ``--save-map`` / ``--save-attention``).

One rule for every side output: for one photo, the path given is the file; for a folder of photos, it is
a folder, and each photo's side output goes there under the photo's result name (``--gif anims`` ->
``anims/a.gif``, ``--save-map maps`` -> ``maps/a.png``). Every path is checked before any photo is
read, so that no run overwrites a photo, its own result or another side output.
"""

from __future__ import annotations

from pathlib import Path

from faceage.errors import FaceAgeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

SIDE_OUTPUTS = {
    "gif": ("--gif", ".gif"),
    "mp4": ("--mp4", ".mp4"),
    "save_map": ("--save-map", ".png"),
    "save_attention": ("--save-attention", ".png"),
}
"""The side outputs: argparse dest -> (flag, the file suffix of what is written)."""


def _sides(args) -> list[tuple[str, str, Path]]:
    """(flag, suffix, path) of each side output given on this command line."""
    return [
        (flag, suffix, getattr(args, dest))
        for dest, (flag, suffix) in SIDE_OUTPUTS.items()
        if getattr(args, dest, None) is not None
    ]


def inputs(args) -> list[Path]:
    """The photos of ``args.input`` (one file, or a folder's photos sorted by name), after checking that
    ``-o`` and every side output can be written without replacing anything they should not."""
    path, output = args.input, args.output
    outputs = [("-o", ".png", output)] + _sides(args)  # (flag, suffix written, path)
    _no_shared_paths(outputs, path.is_dir())
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FaceAgeError(f"no photos in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        for flag, suffix, p in outputs:
            if p.exists() and not p.is_dir():
                raise FaceAgeError(f"{flag} {p} is a file: a folder of photos needs a folder for {flag}")
            if p.resolve() == path.resolve():
                raise FaceAgeError(
                    f"{flag} {p} is the input folder: the results would replace the photos; choose another folder"
                )
            if flag != "-o" and p.suffix.lower() == suffix:
                raise FaceAgeError(
                    f"{flag} {p}: for a folder of photos {flag} names a folder (each photo "
                    f"gets <folder>/<name>{suffix}); give a folder name"
                )
        return files
    if not path.exists():
        raise FaceAgeError(f"{path} does not exist: give a photo or a folder of photos")
    if not output.absolute().parent.is_dir():
        raise FaceAgeError(f"the folder of -o {output} does not exist: create it first or choose another path")
    for flag, suffix, p in outputs:
        if p.resolve() == path.resolve():
            raise FaceAgeError(f"{flag} {p} is the input photo: the result would replace it; choose another name")
        if p.suffix.lower() != suffix:
            kind = "PNG (lossless, its settings in the metadata)" if suffix == ".png" else suffix[1:].upper()
            raise FaceAgeError(f"{flag} {p}: faceage writes {kind} there: name the output {suffix}")
    return [path]


def _no_shared_paths(given: list[tuple[str, str, Path]], folder: bool) -> None:
    """Refuse two outputs that would write one file: the same path, or for a folder of photos the same
    folder and suffix (``-o aged --gif aged`` is fine: aged/a.png and aged/a.gif)."""
    keys = [(flag, (p.resolve(), suffix if folder else None)) for flag, suffix, p in given]
    for i, (flag, p) in enumerate(keys):
        for other, q in keys[i + 1 :]:
            if p == q:
                raise FaceAgeError(
                    f"{flag} and {other} name the same path ({p[0]}): one would overwrite the "
                    "other; give each its own file or folder"
                )


def output_names(files: list[Path]) -> list[str]:
    """Each photo's result name in the output folder: ``<stem>.png``, or ``<stem>_<suffix>.png`` where
    photos share a stem (a.jpg and a.png must not overwrite each other)."""
    stems = [f.stem.lower() for f in files]
    return [f"{f.stem}_{f.suffix[1:]}.png" if stems.count(f.stem.lower()) > 1 else f"{f.stem}.png" for f in files]


def side_output(args, dest: str, dst: Path) -> Path:
    """Where the side output ``dest`` (a key of :data:`SIDE_OUTPUTS`) of the photo whose result is ``dst``
    goes: the path given, or for a folder of photos ``<given folder>/<dst's name, with the suffix>``. Its
    folder is made if missing."""
    base, suffix = getattr(args, dest), SIDE_OUTPUTS[dest][1]
    to = base / dst.with_suffix(suffix).name if args.input.is_dir() else base
    to.parent.mkdir(parents=True, exist_ok=True)
    return to
