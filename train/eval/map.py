"""What each sign does when CUSP renders the aging map (``faceage/cusp/map_render.py``), on real photos and test faces.

For every face: each sign raised alone to 1.0 with the rest of the map at the face's own age (as classifier C
reads it), against the map that is the face's age everywhere. Per sign, over faces:

* locality: the share of the change (summed absolute grey-level difference, in the canonical 128-px frame of
  the face) inside the sign's zone, and inside the zone plus a band of twice the map's blur around it;
* estimator A's age of the face (A judges, never edits) with the sign raised, minus A's age of the face with
  the age-only map.

Writes ``report.md`` and ``results.json`` into ``--out`` and the figure ``--figure`` (one real face with each
sign raised alone, and a uniform young-to-old row).

    python -m train.eval.map --out docs/eval/map --figure docs/map_signs.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from faceage.amgan.maps import DEFAULT_BLUR, SIGNS, _frame, sign_zone_masks
from faceage.cusp.editor import CUSPEditor
from faceage.cusp.map_render import MapRenderer
from faceage.cusp.mask import PRESETS
from faceage.data.utkface import UTKFace
from faceage.edit.progression import labelled
from faceage.errors import NoFaceError
from faceage.io import load_image
from train.eval.metrics import Judges
from train.eval.real import canonical, manifest, resolve

PRESET = PRESETS["custom preservation"]
FIGURE_PHOTO = "smile"
UNIFORM_AGES = (10, 30, 50, 70, 90)


def measure_face(maps: MapRenderer, photo: np.ndarray, i: int, judges: Judges, mode: str = "detail") -> dict:
    s = maps.session
    face = s.faces[i]
    al = face.aligned
    size = face.x.shape[-1]
    own = s.read_ages[i]
    zones = sign_zone_masks(al.landmarks, size)
    band = int(round(2 * DEFAULT_BLUR * _frame(np.asarray(al.landmarks, float))[0]))
    kernel = np.ones((3, 3), np.uint8)

    def rendered(signs):
        out = maps.render(own, signs, *PRESET, mode=mode)
        return canonical(out, al, size)

    base = rendered({})
    base_a = float(judges.age(base)[0])
    row = {}
    for sign in SIGNS:
        x = rendered({sign: 1.0})
        change = (x - base).abs().sum(1)[0].numpy()
        total = float(change.sum()) or 1.0
        near = cv2.dilate(zones[sign].astype(np.uint8), kernel, iterations=band) > 0
        row[sign] = {
            "in_zone": float(change[zones[sign]].sum() / total),
            "in_band": float(change[near].sum() / total),
            "A_delta": float(judges.age(x)[0]) - base_a,
        }
    return {"own_age": own, "A_age_only": base_a, "signs": row}


def summarise(faces: list[dict]) -> dict:
    return {
        sign: {k: float(np.mean([f["signs"][sign][k] for f in faces])) for k in ("in_zone", "in_band", "A_delta")}
        for sign in SIGNS
    }


def real_faces(editor, judges, limit_faces: int | None) -> list[dict]:
    entries = manifest()
    by_id = {e["id"]: e for e in entries}
    out = []
    for e in entries:
        photo = resolve(e, by_id)
        if photo.image is None:
            continue
        try:
            s = editor.open(photo.image)
        except NoFaceError:
            continue
        maps = MapRenderer(s)
        for i in range(len(s.faces)):
            out.append({"photo": e["id"], "face": i, **measure_face(maps, photo.image, i, judges)})
            if limit_faces and len(out) >= limit_faces:
                return out
    return out


def test_faces(editor, judges, n: int) -> list[dict]:

    try:
        split = UTKFace(None, "test", verify=False)
    except Exception as e:  # noqa: BLE001 -- the data is optional
        print(f"no UTKFace test split ({e}): test faces skipped")
        return []
    out = []
    for p in np.unique(np.linspace(0, len(split) - 1, n).round().astype(int)):
        img = load_image(split.read_bytes(int(p)))
        try:
            s = editor.open(img)
        except NoFaceError:
            continue
        out.append({"test_position": int(p), **measure_face(MapRenderer(s), img, 0, judges)})
    return out


def figure(editor, path: Path, size: int = 160) -> None:
    entries = {e["id"]: e for e in manifest()}
    img = resolve(entries[FIGURE_PHOTO], entries).image
    s = editor.open(img)
    maps = MapRenderer(s)
    own = s.read_ages[0]

    def view(out, text):
        return labelled(cv2.resize(s.face_view(out, 0, 512, 0.1), (size, size), interpolation=cv2.INTER_AREA), text)

    signs = [view(img, f"input ({own:.0f})")] + [view(maps.render(own, {sign: 1.0}, *PRESET), sign) for sign in SIGNS]
    ages = [view(img, "input")] + [view(maps.render(a, {}, *PRESET), f"age {a}") for a in UNIFORM_AGES]
    row2 = np.concatenate(ages + [np.full_like(ages[0], 255)] * (len(signs) - len(ages)), axis=1)
    Image.fromarray(np.concatenate([np.concatenate(signs, axis=1), row2], axis=0)).save(path)


def report(result: dict) -> str:
    lines = [
        f"# Per-sign aging rendered by CUSP ({result['date']})",
        "",
        f"Each sign raised alone to 1.0, the rest of the map at the face's own age (C's reading); preset "
        f"{PRESET}, detail path; reproduce with `python -m train.eval.map --out docs/eval/map`. Locality: share of "
        "the change (canonical 128-px frame) inside the sign's zone / inside the zone plus a band of twice the "
        "map's blur. A: estimator A's age with the sign raised minus with the age-only map.",
        "",
    ]
    for name, key in (("Real photos", "real"), ("UTKFace test faces", "test")):
        faces = result[key]
        if not faces:
            continue
        summary = summarise(faces)
        lines += [
            f"## {name} ({len(faces)} faces)",
            "",
            "| sign | in zone | zone + band | A's age change (y) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {sign} | {v['in_zone']:.2f} | {v['in_band']:.2f} | {v['A_delta']:+.1f} |" for sign, v in summary.items()
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/eval/map"))
    p.add_argument("--figure", type=Path, default=None, help="also write the figure (e.g. docs/map_signs.png)")
    p.add_argument("--test-n", type=int, default=20, help="UTKFace test faces (default 20)")
    p.add_argument("--real-limit", type=int, default=None, help="at most this many real faces")
    a = p.parse_args(argv)
    editor, judges = CUSPEditor.load(device="cpu"), Judges("cpu")
    a.out.mkdir(parents=True, exist_ok=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "preset": list(PRESET),
        "real": real_faces(editor, judges, a.real_limit),
        "test": test_faces(editor, judges, a.test_n),
    }
    (a.out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (a.out / "report.md").write_text(report(result) + "\n", encoding="utf-8")
    print(report(result))
    if a.figure is not None:
        figure(editor, a.figure)
        print(f"figure -> {a.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
