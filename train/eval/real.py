"""The real-photo evaluation: edits of ordinary photos (not UTKFace crops), judged at the photo's own detail.

    python -m train.eval.real --out docs/eval/real                 # CUSP, both paths, targets 8 20 40 60 80
    python -m train.eval.real --model amgan --out docs/eval/real/amgan

The photos are real photographs that ship in registry packages (``train/real_photos/manifest.json``:
package, version, path, licence). Those whose licence allows it are committed in ``train/real_photos/``;
the others are read from the installed package and skipped, with a line saying how to install it,
when it is absent. Every face dlib finds is edited to each target age by both paths ("detail": the
model's change applied to the photo's own pixels, the default; "replace": the generated face pasted
back), and judged per face (train/eval/metrics.py's judges never train the models):

* identity: dlib's 128-d distance from the input face (same person < 0.6; re-saving a photo ~0.05);
* age: estimator A's reading of the output (A is never used to make an edit), and classifier C's (the one
  the detail path reads the source age with, and the one a calibration of target -> look may use);
* sharpness: variance of the Laplacian of the luma in the face's landmark box, output / input;
* colour shift: mean Lab chroma change |d(a*, b*)| over the face mask; for a grey input also the largest
  channel spread of the output (0 = still grey);
* seam: mean |gradient of (output - input)| on the mask's edge band, grey levels per pixel.

Writes ``<out>/results.json`` (every face, every figure), ``<out>/report.md`` (means and the issue's goals)
and one contact sheet per face (input, then each target; top row detail, bottom row replace) at the
face's own resolution (at most ``--sheet-max`` px) as ``<out>/sheets/<photo>_<face>.jpg``; only sheets of
photos whose licence allows redistribution are named in the report (the others are written as
``<out>/sheets/local/`` for a local look).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from faceage.amgan.editor import AMGANEditor
from faceage.cusp.editor import CUSPEditor, to_tensor
from faceage.edit.paste import face_mask, photo_window, rescaled_frame
from faceage.edit.progression import labelled
from faceage.edit.transfer import change_mask
from faceage.errors import NoFaceError
from faceage.face.align import TEMPLATE_SIZE, warp_to_crop
from faceage.io import load_image
from train.eval.metrics import Judges

PHOTOS = Path(__file__).resolve().parents[1] / "real_photos"
TARGETS = (8, 20, 40, 60, 80)
PATHS = ("detail", "replace")
FIGURE = (("grace_hopper", (50, 25)), ("luispedro", (55, 80)))  # the README's picture: photos, ages
CACHE_ENV = "FACEAGE_REAL_PHOTOS"
SEPIA = np.array([1.07, 0.95, 0.78], np.float32)  # a warm tone times the luma


@dataclass
class Photo:
    """One manifest entry and its image (``image`` None with ``missing`` saying why)."""

    entry: dict
    image: np.ndarray | None
    missing: str = ""

    @property
    def name(self) -> str:
        return self.entry["id"]


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "faceage" / "real_photos")


def locate(entry: dict, folder: Path = PHOTOS) -> Path | None:
    """The file of ``entry``: committed here, in the installed Python module, or in the unpacked package cache."""
    if entry.get("file"):
        return folder / entry["file"]
    if entry.get("module"):
        spec = importlib.util.find_spec(entry["module"])
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / entry["path"]
    return cache_root() / entry["package"] / entry["path"]


def resolve(entry: dict, entries: dict[str, dict], folder: Path = PHOTOS) -> Photo:
    """``entry``'s image: read from where :func:`locate` says, or made grey / sepia from another entry's."""
    if entry.get("derived"):
        base = resolve(entries[entry["from"]], entries, folder)
        if base.image is None:
            return Photo(entry, None, base.missing)
        y = cv2.cvtColor(base.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        tone = np.ones(3, np.float32) if entry["derived"] == "grey" else SEPIA
        return Photo(entry, np.clip(np.round(y[..., None] * tone), 0, 255).astype(np.uint8))
    path = locate(entry, folder)
    if path is None or not path.is_file():
        where = "pip install it" if entry.get("module") else f"train/real_photos/fetch.sh (into {cache_root()})"
        return Photo(entry, None, f"{entry['package']} not here: {where}")
    return Photo(entry, load_image(path))


def manifest(folder: Path = PHOTOS) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["photos"]


# --------------------------------------------------------------------------- measures


def luma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)


def landmark_box(aligned, shape) -> tuple[int, int, int, int]:
    """The photo-pixel box of the face's 68 landmarks (x0, y0, x1, y1), clipped to the photo."""
    pts = cv2.transform(aligned.landmarks[None].astype(np.float64), aligned.inverse)[0]
    h, w = shape[:2]
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 1, 1, [w, h])
    return int(x0), int(y0), int(x1), int(y1)


def sharpness(img: np.ndarray, box) -> float:
    """Variance of the Laplacian of the luma inside ``box``."""
    x0, y0, x1, y1 = box
    return float(cv2.Laplacian(luma(img[y0:y1, x0:x1]), cv2.CV_32F).var())


def lab_chroma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 1:]


def is_grey(img: np.ndarray) -> bool:
    return bool((np.ptp(img.astype(np.int16), axis=2) <= 2).all())


def path_alpha(aligned, path: str, shape) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(box, alpha): the mask each path blends through, in the photo."""
    mask = change_mask(aligned, aligned.size) if path == "detail" else face_mask(aligned)
    window = photo_window(mask, aligned, aligned.size, shape[:2])
    return None if window is None else (window[0], window[2])


def pixel_measures(before: np.ndarray, after: np.ndarray, aligned, path: str) -> dict:
    """Sharpness ratio, colour shift, grey spread and seam of ``after`` against ``before`` for one face."""
    box = landmark_box(aligned, before.shape)
    out = {"sharpness": sharpness(after, box) / max(sharpness(before, box), 1e-6)}
    window = path_alpha(aligned, path, before.shape)
    if window is None:
        return out | {"colour_shift": 0.0, "seam": 0.0}
    (x0, y0, x1, y1), alpha = window
    b, a = before[y0:y1, x0:x1], after[y0:y1, x0:x1]
    inside = alpha > 0.5
    shift = np.linalg.norm(lab_chroma(a) - lab_chroma(b), axis=2)
    out["colour_shift"] = float(shift[inside].mean())
    if is_grey(b[inside][None]):
        out["grey_spread"] = int(np.ptp(a[inside].astype(np.int16), axis=1).max())
    diff = luma(a) - luma(b)
    grad = np.hypot(cv2.Sobel(diff, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(diff, cv2.CV_32F, 0, 1, ksize=3)) / 8
    band = (alpha > 0.05) & (alpha < 0.95)
    out["seam"] = float(grad[band].mean()) if band.any() else 0.0
    return out


def canonical(img: np.ndarray, aligned, size: int = TEMPLATE_SIZE) -> torch.Tensor:
    """The face of ``img`` in the canonical frame at ``size`` (the input's alignment), as a [1,3,S,S] tensor."""
    crop = warp_to_crop(img, rescaled_frame(aligned.matrix, aligned.size, size), size)
    return to_tensor(crop, "cpu")


# --------------------------------------------------------------------------- run


def load_editor(model: str, weights=None):
    if model == "cusp":
        return CUSPEditor.load(weights, device="cpu")

    return AMGANEditor.load(weights, device="cpu")


def edit(session, model: str, age: float, path: str, preset) -> np.ndarray:
    if model == "cusp":
        return session.edit(age, *preset, mode=path)
    return session.edit(age, mode=path)


def evaluate(
    photos: list[Photo], model: str, targets, out: Path, preset=(8.0, 4.5), weights=None, sheet_max: int = 512
) -> dict:
    editor = load_editor(model, weights)
    judges = Judges("cpu")
    rows, skipped = [], []
    (out / "sheets" / "local").mkdir(parents=True, exist_ok=True)
    for photo in photos:
        if photo.image is None:
            skipped.append({"photo": photo.name, "why": photo.missing})
            continue
        img = photo.image
        try:
            session = editor.open(img)
        except NoFaceError:
            skipped.append({"photo": photo.name, "why": "no face found"})
            continue
        edits = {(p, t): edit(session, model, t, p, preset) for p in PATHS for t in targets}
        grey_photo = is_grey(img)
        for i, face in enumerate(session.faces):
            al = face.aligned
            x_in = canonical(img, al)
            shapes = judges.landmarks(x_in)
            emb_in = judges.identity(x_in, shapes)
            row = {
                "photo": photo.name,
                "face": i,
                "width": round(float(al.size / np.sqrt(abs(np.linalg.det(al.matrix[:, :2]))))),
                "grey": grey_photo,
                "read_age": face.read_age,
                "input_age_A": float(judges.age(x_in)[0]),
                "redistributable": bool(photo.entry.get("redistributable")),
            }
            for p in PATHS:
                for t in targets:
                    after = edits[(p, t)]
                    x_out = canonical(after, al)
                    m = pixel_measures(img, after, al, p)
                    m["identity"] = float((judges.identity(x_out, shapes) - emb_in).norm())
                    m["age_A"] = float(judges.age(x_out)[0])
                    m["age_C"] = editor.read_age(x_out)  # C (ours to calibrate with) beside A (the judge)
                    row[f"{p}@{t:g}"] = m
            rows.append(row)
            sheet = contact_sheet(session, img, edits, i, targets, sheet_max)
            where = out / "sheets" / ("" if row["redistributable"] else "local") / f"{photo.name}_{i}.jpg"
            Image.fromarray(sheet).save(where, quality=90)
            row["sheet"] = str(where.relative_to(out)) if row["redistributable"] else None
    return {
        "model": model,
        "weights": editor.info.get("file"),
        "weights_sha256": editor.info.get("sha256"),
        "preset": list(preset) if model == "cusp" else None,
        "targets": list(targets),
        "faces": rows,
        "skipped": skipped,
        "summary": summary(rows, targets) if rows else {},
        "date": time.strftime("%Y-%m-%d"),
    }


def contact_sheet(session, img, edits, face: int, targets, max_size: int) -> np.ndarray:
    """Rows "detail" and "replace": the input face, then each target, at the face's own resolution."""
    rows = []
    for p in PATHS:
        views = [session.face_view(img, face, max_size)] + [
            session.face_view(edits[(p, t)], face, max_size) for t in targets
        ]
        rows.append(np.concatenate(views, axis=1))
    return np.concatenate(rows, axis=0)


def figure(editor, rows: list[tuple[np.ndarray, tuple[float, ...]]], preset=(8.0, 4.5), size: int = 256) -> np.ndarray:
    """The README's picture: for each (photo, ages), its largest face as it is, then edited to each age by the
    default (detail-preserving) path of CUSP ``editor`` at ``preset``, side by side at ``size`` px, labelled."""

    lines = []
    for img, ages in rows:
        s = editor.open(img, face_index=0)
        views = [labelled(s.face_view(img, 0, size), f"photo (reads {s.read_ages[0]:.0f})")]
        views += [labelled(s.edit_face(a, *preset, max_size=size), f"{a:g}") for a in ages]
        lines.append(np.concatenate([cv2.resize(v, (size, size), interpolation=cv2.INTER_AREA) for v in views], 1))
    return np.concatenate(lines, 0)


def summary(rows: list[dict], targets) -> dict:
    """Means over faces per path and target, and the goals of the real-photo issue for each path."""
    out = {}
    for p in PATHS:
        per = {}
        for t in targets:
            ms = [r[f"{p}@{t:g}"] for r in rows]
            keys = ("identity", "age_A", "age_C", "sharpness", "colour_shift", "seam")
            per[f"{t:g}"] = {k: float(np.mean([m[k] for m in ms])) for k in keys}
            per[f"{t:g}"]["identity_max"] = float(max(m["identity"] for m in ms))
            greys = [m["grey_spread"] for m in ms if "grey_spread" in m]
            per[f"{t:g}"]["grey_spread_max"] = max(greys) if greys else None
        gap = per[f"{max(targets):g}"]["age_A"] - per[f"{min(targets):g}"]["age_A"]
        sharp = [per[f"{t:g}"]["sharpness"] for t in targets]
        greys = [per[f"{t:g}"]["grey_spread_max"] for t in targets if per[f"{t:g}"]["grey_spread_max"] is not None]
        out[p] = {
            "per_target": per,
            "goals": {
                "identity_mean_le_0.40_every_target": all(per[f"{t:g}"]["identity"] <= 0.40 for t in targets),
                "sharpness_0.8_1.3": all(0.8 <= s <= 1.3 for s in sharp),
                "grey_stays_grey": (max(greys) == 0) if greys else None,
                "age_gap_A": gap,
                "age_gap_ge_40": gap >= 40,
            },
        }
    return out


def report(result: dict) -> str:
    targets = result["targets"]
    lines = [
        f"# Real-photo evaluation ({result['model']}, {result['date']})",
        "",
        f"{len(result['faces'])} faces from {len({r['photo'] for r in result['faces']})} photos "
        f"(`train/real_photos/manifest.json`), weights `{result['weights']}` "
        f"({(result['weights_sha256'] or '')[:8]})"
        + (f", preset {tuple(result['preset'])}" if result["preset"] else "")
        + "; reproduce with "
        + (
            "`python -m train.eval.real --out docs/eval/real`"
            if result["model"] == "cusp"
            else f"`python -m train.eval.real --model {result['model']} --out docs/eval/real_{result['model']}`"
        )
        + " (the photos of other packages: `train/real_photos/fetch.sh` first).",
        "",
    ]
    if result["skipped"]:
        skipped = "; ".join(f"{s['photo']} ({s['why']})" for s in result["skipped"])
        lines += [f"Skipped (not installed here): {skipped}", ""]
    for p in PATHS:
        s = result["summary"][p]
        lines += [
            f"## Path: {p}",
            "",
            "| target | identity (mean / max) | A's age | C's age | sharpness | "
            "colour shift | seam | grey spread (max) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in targets:
            m = s["per_target"][f"{t:g}"]
            lines.append(
                f"| {t:g} | {m['identity']:.3f} / {m['identity_max']:.3f} | {m['age_A']:.1f} | "
                f"{m['age_C']:.1f} | "
                f"{m['sharpness']:.2f} | {m['colour_shift']:.2f} | {m['seam']:.2f} | {m['grey_spread_max']} |"
            )
        g = s["goals"]
        lines += [
            "",
            f"Goals: identity <= 0.40 at every target: **{g['identity_mean_le_0.40_every_target']}**; "
            f"sharpness 0.8-1.3: **{g['sharpness_0.8_1.3']}**; grey stays grey: **{g['grey_stays_grey']}**; "
            f"A(max) - A(min) = {g['age_gap_A']:.1f} y (goal >= 40: **{g['age_gap_ge_40']}**).",
            "",
        ]
    shipped = [r for r in result["faces"] if r["redistributable"]]
    if 0 < len(shipped) < len(result["faces"]):
        lines += [
            f"## The photos in the repository only ({len(shipped)} faces; what a clean checkout reproduces "
            "without `train/real_photos/fetch.sh`)",
            "",
            "| path | identity @"
            + " / ".join(f"{t:g}" for t in targets)
            + " | A's age @"
            + " / ".join(f"{t:g}" for t in targets)
            + " | sharpness | grey spread (max) |",
            "|---|---|---|---|---|",
        ]
        sub = summary(shipped, targets)
        for p in PATHS:
            per = sub[p]["per_target"]
            ts = [per[f"{t:g}"] for t in targets]
            greys = [m["grey_spread_max"] for m in ts if m["grey_spread_max"] is not None]
            lines.append(
                f"| {p} | "
                + " / ".join(f"{m['identity']:.2f}" for m in ts)
                + " | "
                + " / ".join(f"{m['age_A']:.1f}" for m in ts)
                + f" | {min(m['sharpness'] for m in ts):.2f}-{max(m['sharpness'] for m in ts):.2f} | "
                + f"{max(greys) if greys else None} |"
            )
        lines.append("")
    lines += [
        "## Per face (detail path)",
        "",
        "| photo | face | width px | grey | C reads | A reads input | "
        + " | ".join(f"id / A @{t:g}" for t in targets)
        + " | sheet |",
        "|---" * (7 + len(targets)) + "|",
    ]
    for r in result["faces"]:
        cells = " | ".join(f"{r[f'detail@{t:g}']['identity']:.2f} / {r[f'detail@{t:g}']['age_A']:.0f}" for t in targets)
        sheet = f"[sheet]({r['sheet']})" if r["sheet"] else "(licence: not committed)"
        lines.append(
            f"| {r['photo']} | {r['face']} | {r['width']} | {'yes' if r['grey'] else ''} | "
            f"{r['read_age']:.0f} | {r['input_age_A']:.0f} | {cells} | {sheet} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("cusp", "amgan"), default="cusp")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    ap.add_argument("--preset", type=float, nargs=2, default=(8.0, 4.5), metavar=("SIGMA_M", "SIGMA_G"))
    ap.add_argument("--only", nargs="*", default=None, help="photo ids to run (default: all)")
    ap.add_argument("--sheet-max", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("docs/eval/real"))
    ap.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="also write the README's picture here (grace_hopper made younger, luispedro older)",
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    entries = {e["id"]: e for e in manifest()}
    unknown = sorted(set(a.only or ()) - set(entries))
    if unknown:
        ap.error(f"--only: no photo {', '.join(unknown)} in the manifest; ids: {', '.join(entries)}")
    if a.figure is not None:
        pics = [(resolve(entries[i], entries).image, ages) for i, ages in FIGURE]
        cusp = load_editor("cusp", a.weights if a.model == "cusp" else None)
        Image.fromarray(figure(cusp, pics, tuple(a.preset))).save(a.figure)
    photos = [resolve(e, entries) for e in entries.values() if a.only is None or e["id"] in a.only]
    result = evaluate(photos, a.model, a.targets, a.out, tuple(a.preset), a.weights, a.sheet_max)
    if not result["faces"]:
        print(
            "no face was evaluated: " + "; ".join(f"{s['photo']} ({s['why']})" for s in result["skipped"]),
            file=sys.stderr,
        )
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (a.out / "report.md").write_text(report(result), encoding="utf-8")
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
