"""Where each training face's aging-map zones go: the face's own landmarks, not the template's.

The paper places every sign's zone from the landmarks of the face it labels (Sec. 3.3). UTKFace crops
are aligned, so the zones of the template landmarks (:class:`train.amgan.maps.MapBasis`) land near the
right place, but at the *same pixels for every face*, while the landmarks of the aligned crops still
spread by 4-6 px (brows, mouth) to 10 px (jaw) at 128 px (``faceage/face/template_utkface68.json``,
``mean_deviation_px`` at 200 px). With fixed zones, every zone edge sits at one fixed value of the X/Y
location maps, and G learnt artefacts tied to those positions: the preliminary weights draw a stripe
across the forehead at the same rows whatever the map says (a uniform age-only map, whose zones have
no edges at all, gets it too). The app, meanwhile, builds each photo's map from that face's own
landmarks (:class:`faceage.amgan.editor.AMGANSession`).

Choice (ours): each face's map is the template map moved by the *similarity* (shift, scale, rotation)
that fits the template's alignment points to the face's own dlib landmarks. It keeps the batched
basis of :class:`~train.amgan.maps.MapBasis` (one ``grid_sample`` per batch, so the GPU stays fed) and
leaves out the non-rigid part of a face's shape, which the map's blur (Sec. 3.3: "not penalised for
imprecise zone edges") absorbs. The similarities are stored as ``affine_grid`` matrices in normalised
coordinates, so they hold at any resolution, cached beside the packed split
(``<pack>.placement.safetensors``) like the sign labels. dlib runs here, once (about 30 ms a face);
the GPU machine has no dlib and reads the cache, which travels with the pack. A face dlib misses keeps
the template placement (the identity matrix). The weak sign labels are still measured in the template
zones (:mod:`train.amgan.sign_scores`).

    python -m train.amgan.placement packed/utkface_train_128.safetensors
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceage.face.align import alignment_matrix

log = logging.getLogger("faceage.train")

IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def placement_path(pack: str | Path) -> Path:
    """``<pack stem>.placement.safetensors`` beside the packed split."""
    pack = Path(pack)
    return pack.with_name(pack.name.removesuffix(".safetensors") + ".placement.safetensors")


def face_theta(landmarks: np.ndarray, size: int) -> torch.Tensor:
    """The ``[2, 3]`` ``affine_grid`` matrix (normalised coordinates, ``align_corners=True``) that moves
    a map drawn on the template landmarks onto a face with these ``landmarks`` (crop pixels, side ``size``).

    ``affine_grid`` asks, for every output pixel, where to read the input: the output is the face's
    frame and the input the template's, so the matrix is the face -> template map ``A`` (the alignment
    similarity) written for coordinates u = 2 p / (S - 1) - 1: u_in = A2 u_out + A2 [1, 1] + 2 t / (S - 1) - 1.
    """
    A = alignment_matrix(np.asarray(landmarks, dtype=np.float64), size)
    A2, t = A[:, :2], A[:, 2]
    theta = np.concatenate([A2, (A2.sum(1) + 2 * t / (size - 1) - 1)[:, None]], axis=1)
    return torch.from_numpy(theta).float()


def place(maps: torch.Tensor, theta: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Template-placed maps moved onto each face by ``theta`` ``[N, 2, 3]`` -> ``[N, C, size, size]``.

    ``maps`` ``[N, C, P, P]`` may be drawn on a canvas larger than the crop (``P = size + 2 m``, the crop
    in its middle): the face region and the forehead zone reach past the crop's edges, and a face whose
    zones sit further in than the template's must find them there, not zeros. In the padded canvas's
    normalised coordinates the crop's u is ``u (size - 1) / (P - 1)``, so theta is scaled by that factor.
    Beyond the canvas, zeros (background) come in."""
    size = maps.shape[-1] if size is None else size
    k = (size - 1) / (maps.shape[-1] - 1)
    grid = F.affine_grid(theta.to(maps) * k, [len(maps), maps.shape[1], size, size], align_corners=True)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class PlacedMaps:
    """Aging maps of faces with their own zone placements: :class:`~train.amgan.maps.MapBasis` drawn on a
    canvas ``margin`` pixels wider on every side than the crop (a quarter of the side by default), moved
    per face by :func:`place`."""

    def __init__(self, size: int, margin: int | None = None):
        from faceage.face.align import template_points
        from train.amgan.maps import MapBasis

        self.size = size
        self.margin = size // 4 if margin is None else margin
        self.basis = MapBasis(size + 2 * self.margin, template_points(size) + self.margin)

    def maps(self, age_norm: torch.Tensor, scores: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Maps ``[N, C, S, S]`` for normalised ages [N], sign scores [N, Z] and placements [N, 2, 3]."""
        return place(self.basis.maps(age_norm, scores), theta, self.size)

    def to(self, device) -> PlacedMaps:
        self.basis.to(device)
        return self


def measure(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta ``[N, 2, 3]``, found ``[N]`` bool) of every face of a PackedFaces, by faceage's detector (the
    face nearest the crop centre; the template placement where none is found)."""
    from faceage.face.detect import detect_faces

    def central_face_landmarks(img: np.ndarray) -> np.ndarray | None:
        faces, c = detect_faces(img), np.array(img.shape[1::-1]) / 2
        return (
            min(faces, key=lambda f: np.hypot(*((np.array(f.box[:2]) + f.box[2:]) / 2 - c))).landmarks
            if faces
            else None
        )

    thetas, found = [], []
    for i in tqdm(range(len(dataset)), desc="landmarks", mininterval=5):
        pts = central_face_landmarks(np.ascontiguousarray(dataset.images[i].numpy()))
        found.append(pts is not None)
        thetas.append(IDENTITY if pts is None else face_theta(pts, dataset.size))
    return torch.stack(thetas), torch.tensor(found)


def packed_placement(dataset, cache: str | Path | None = None) -> torch.Tensor:
    """theta ``[N, 2, 3]`` of every face of a PackedFaces, read from its cache (computed and written
    there first if missing or made for other faces)."""
    from faceage.checkpoint import load_checkpoint, save_checkpoint
    from train.amgan.sign_scores import digest_names

    cache = Path(cache) if cache is not None else placement_path(dataset.path)
    digest = digest_names(dataset.names)
    if cache.is_file():
        tensors, manifest = load_checkpoint(cache)
        if manifest.get("names_sha") == digest:
            return tensors["theta"]
        log.info("%s was made for other faces: measuring again", cache)
    try:
        theta, found = measure(dataset)
    except ImportError as e:
        from faceage.data.utkface import DatasetError

        raise DatasetError(
            f"{cache} is missing and dlib cannot be imported here ({e}): make it where dlib is, "
            f"with `python -m train.amgan.placement {dataset.path}`, and bring it beside the pack"
        ) from None
    save_checkpoint(
        cache,
        {"theta": theta, "found": found},
        {
            "kind": "amgan-placement",
            "names_sha": digest,
            "count": len(theta),
            "found": int(found.sum()),
            "size": dataset.size,
        },
    )
    log.info(
        "zone placement: %d of %d faces from their own landmarks, written to %s", int(found.sum()), len(theta), cache
    )
    return theta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Measure every face's zone placement for AMGAN training (dlib).")
    p.add_argument("pack", type=Path, help="a packed split (python -m train.pack_data)")
    p.add_argument("--out", type=Path, default=None, help="default: <pack stem>.placement.safetensors")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from faceage.data.utkface import PackedFaces

    faces = PackedFaces(args.pack)
    theta = packed_placement(faces, args.out)
    # theta[:, :, 2] is where the crop centre reads the template (normalised): the zones' shift there
    shift = (theta[:, :, 2] * (faces.size - 1) / 2).norm(dim=1)
    print(
        f"{len(theta)} faces; zones moved at the crop centre by median {shift.median():.2f} px, "
        f"90th percentile {shift.quantile(0.9):.2f} px"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
