"""Example faces for the app's gallery, gathered at start-up and never shipped (UTKFace is non-commercial).

Where they come from, first match wins:
  1. ``$FACEAGE_EXAMPLES``: a folder of photos (the first ``MAX_EXAMPLES`` by name, labelled by file name);
  2. the UTKFace test split (``faceage.data.utkface.default_root()``, when present): one face per age
     decade, so the gallery spans young to old; labelled with the age in the file name;
  3. none: the app hides the gallery and says how to add one.

The chosen files are copied into ``dest`` (a temporary folder the app owns), so Gradio can serve them
wherever the source lies; nothing is written into the repository.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from faceage.data.utkface import (
    TEST_SPLIT_FILE,
    DatasetError,
    UTKFaceIndex,
    default_root,
)

ENV = "FACEAGE_EXAMPLES"
MAX_EXAMPLES = 8
DECADES = range(10, 90, 10)  # 10-19 ... 80-89: one UTKFace test face each
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def gather_examples(dest: Path, folder=None, utkface_root=None) -> list[tuple[str, str]]:
    """``[(path, label), ...]`` of example photos copied into ``dest``; ``[]`` when there are none.

    ``folder`` (else ``$FACEAGE_EXAMPLES``) wins over UTKFace; ``utkface_root`` overrides its default place.
    """
    folder = folder or os.environ.get(ENV)
    if folder:
        return _from_folder(Path(folder), Path(dest))

    root = Path(utkface_root) if utkface_root else default_root()
    if not (root / TEST_SPLIT_FILE).is_file():
        return []
    return _from_utkface(root, Path(dest))


def _from_folder(folder: Path, dest: Path) -> list[tuple[str, str]]:
    if not folder.is_dir():
        return []
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    out = []
    for p in photos[:MAX_EXAMPLES]:
        copy = dest / p.name
        shutil.copyfile(p, copy)
        out.append((str(copy), p.stem))
    return out


def _from_utkface(root: Path, dest: Path) -> list[tuple[str, str]]:
    """One test-split face per decade, varying gender and ethnicity from one decade to the next."""

    try:
        index = UTKFaceIndex.build(root, verify=False)  # tar headers only: under a second
    except DatasetError:
        return []
    test = sorted(index.split("test"), key=lambda m: m.record.name)
    out = []
    for k, low in enumerate(DECADES):
        decade = [m for m in test if low <= m.record.age < low + 10]
        varied = [m for m in decade if m.record.gender == k % 2 and m.record.race == k % 4]
        if not (varied or decade):
            continue
        m = (varied or decade)[0]
        with open(index.shards[m.shard], "rb") as f:
            f.seek(m.offset)
            data = f.read(m.size)
        path = dest / m.record.name  # the data set's own name: traceable to the test split
        path.write_bytes(data)
        out.append((str(path), f"age {m.record.age}"))
    return out[:MAX_EXAMPLES]
