"""Finding faces: detection rate upright and rotated, small faces, no-face photos, real photos, time per photo.

Prints the figures of ``docs/foundation.md`` and ``docs/benchmarks.md`` for :func:`faceage.face.detect.detect_faces`:

1. UTKFace test crops (one face each): found upright and turned 90 / 180 / 270 degrees (``np.rot90``), ms/crop;
2. small faces: test crops scaled so the face is 40 / 48 / 64 px wide, 12 pasted into each 1024 x 768 cluttered
   background (blurred noise at three scales); a face counts when a box centre falls in it; other boxes are false;
3. photos with no face (the backgrounds, matplotlib's sample pictures): faces found in 4 orientations (false);
4. real photos (``train/real_photos/manifest.json``, those present): faces found, their width and head turn;
5. time per photo at 0.3, 1 and 12 megapixels (``train/real_photos/family.jpg`` resized, 4 faces), median of 5.

    PYTHONPATH=. python train/bench/find_faces.py --limit 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.data.utkface import SOURCE_SIZE, UTKFace  # noqa: E402
from faceage.face.detect import detect_faces  # noqa: E402
from faceage.io import load_image  # noqa: E402
from train.eval.real import PHOTOS, manifest, resolve  # noqa: E402

FACE_IN_CROP = 0.9  # the face's share of a UTKFace crop's width (its box is about 180 of 200 px)


def backdrop(h: int, w: int, rng) -> np.ndarray:
    """A cluttered background with no face: coloured noise blurred at three scales."""
    out = np.zeros((h, w, 3), np.float32)
    for cell in (64, 16, 4):
        noise = rng.uniform(0, 255, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        out += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w] / 3
    return np.clip(out, 0, 255).astype(np.uint8)


def centred_hit(faces, box) -> bool:
    left, t, r, b = box
    return any(left <= (f.box[0] + f.box[2]) / 2 <= r and t <= (f.box[1] + f.box[3]) / 2 <= b for f in faces)


def rotations(crops: list[np.ndarray]) -> None:
    for k in range(4):
        start, found = time.perf_counter(), 0
        for crop in crops:
            img = np.ascontiguousarray(np.rot90(crop, k))
            c = SOURCE_SIZE / 2
            found += centred_hit(detect_faces(img), (c - 60, c - 60, c + 60, c + 60))
        ms = 1000 * (time.perf_counter() - start) / len(crops)
        print(f"  rotated {90 * k:3d} deg: {found}/{len(crops)} = {100 * found / len(crops):.1f}%, {ms:.1f} ms/crop")


def small_faces(crops: list[np.ndarray], rng, per_scene: int = 12) -> list[np.ndarray]:
    scenes = []
    for width in (40, 48, 64):
        found = false = total = 0
        for i in range(0, len(crops), per_scene):
            scene = backdrop(768, 1024, rng)
            boxes = []
            for j, crop in enumerate(crops[i : i + per_scene]):
                side = int(round(width / FACE_IN_CROP))
                small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
                x, y = 40 + (j % 4) * 240 + int(rng.integers(0, 100)), 40 + (j // 4) * 240 + int(rng.integers(0, 100))
                scene[y : y + side, x : x + side] = small
                boxes.append((x, y, x + side, y + side))
            faces = detect_faces(scene)
            found += sum(centred_hit(faces, b) for b in boxes)
            false += sum(
                not any(
                    b[0] <= (f.box[0] + f.box[2]) / 2 <= b[2] and b[1] <= (f.box[1] + f.box[3]) / 2 <= b[3]
                    for b in boxes
                )
                for f in faces
            )
            total += len(boxes)
            scenes.append(scene)
        print(f"  faces {width} px wide: {found}/{total} = {100 * found / total:.1f}% found, {false} false")
    return scenes


def no_face(rng) -> None:
    import matplotlib

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    images = [backdrop(768, 1024, rng) for _ in range(6)] + [
        load_image(sample / n) for n in ("Minduka_Present_Blue_Pack.png", "logo2.png")
    ]
    false = sum(len(detect_faces(np.ascontiguousarray(np.rot90(img, k)))) for img in images for k in range(4))
    print(f"  {len(images)} photos without a face x 4 orientations: {false} false faces")


def real_photos() -> None:
    entries = manifest()
    by_id = {e["id"]: e for e in entries}
    total = 0
    for entry in entries:
        photo = resolve(entry, by_id)
        if photo.image is None:
            continue
        faces = detect_faces(photo.image)
        total += len(faces)
        print(
            f"  {entry['id']:18s} {len(faces)} faces (manifest {entry.get('faces', '-')}): width "
            + ", ".join(f"{f.width:.0f}" for f in faces)
            + "; turn "
            + ", ".join(f"{f.yaw:+.0f}" for f in faces)
        )
    print(f"  {total} faces in all")


def timing() -> None:
    img = load_image(PHOTOS / "family.jpg")
    for mp in (0.3, 1.0, 12.0):
        scale = np.sqrt(mp * 1e6 / (img.shape[0] * img.shape[1]))
        photo = cv2.resize(
            img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        )
        detect_faces(photo)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            n = len(detect_faces(photo))
            times.append(time.perf_counter() - start)
        print(f"  {photo.shape[1]}x{photo.shape[0]} ({mp:g} MP): {1000 * np.median(times):.0f} ms, {n} faces")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300, help="UTKFace test crops (default 300)")
    parser.add_argument("--root", default=None, help="UTKFace folder (default: shared/data/utkface)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("time per photo (detection + landmarks):")
    timing()
    try:
        faces = UTKFace(args.root, "test", verify=False)
    except Exception as e:  # noqa: BLE001 -- the data is optional; the rest still runs
        print(f"UTKFace not available ({e}); skipping sections 1 and 2")
        faces = None
    if faces is not None:
        positions = np.unique(np.linspace(0, len(faces) - 1, num=min(args.limit, len(faces))).round().astype(int))
        crops = [load_image(faces.read_bytes(int(p))) for p in positions]
        print(f"UTKFace test crops ({len(crops)}):")
        rotations(crops)
        print("small faces pasted into cluttered 1024x768 backgrounds:")
        small_faces(crops, rng)
    print("photos without a face:")
    no_face(rng)
    print("real photos:")
    real_photos()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
