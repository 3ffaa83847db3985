"""Are AMGAN's stripes locked to image rows or to the map? Prints the mean |change| per image row.

    PYTHONPATH=. python train/bench/amgan_row_profile.py [--weights W] [--n 8] [--shift 8]

On ``n`` test faces (the packed test split, see train/eval/amgan.py): the change made by raising the
forehead sign to 1.0 in each face's own map, with the zones drawn on the template landmarks and again on
landmarks moved ``shift`` px down; and the change between uniform age-only maps of 70 and 30 (no zone
edges inside the face). Per mille of the [0, 1] range, rows 0-39. A stripe that stays at the same row
when the zones move, and shows up on uniform maps too, is drawn from the location maps, not the map.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.amgan.maps import SIGNS  # noqa: E402
from faceage.data.ages import normalize_age  # noqa: E402
from faceage.face.align import template_points  # noqa: E402
from train.eval.amgan import Runner, load_generator, test_faces  # noqa: E402


def row_profile(before: torch.Tensor, after: torch.Tensor, rows: int = 40) -> list[int]:
    """Mean |after - before| per image row (first ``rows``), per mille of the [0, 1] range."""
    d = ((after - before).abs() / 2).mean(dim=(0, 1, 3))
    return [round(1000 * v) for v in d[:rows].tolist()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=Path("assets/amgan_utkface128.safetensors"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--shift", type=float, default=8.0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    G, _ = load_generator(a.weights)
    x, ages, labels, *_ = test_faces(a.n)
    size, n, fh = x.shape[-1], len(x), SIGNS.index("forehead")
    own_age = normalize_age(ages)
    raised = labels.clone()
    raised[:, fh] = 1.0
    runners = {}
    for shift in (0.0, a.shift):
        pts = template_points(size).copy()
        pts[:, 1] += shift
        run = runners[shift] = Runner(G, size, pts)
        rows = torch.nonzero(run.basis.zones[fh, 0].amax(1) > 0.05).flatten()
        print(
            f"zones {shift:g} px down (forehead zone rows {rows.min().item()}-{rows.max().item()}), forehead raised:",
            *row_profile(run(x, own_age, labels), run(x, own_age, raised)),
        )

    def uniform(t: float):
        v = torch.full((n,), normalize_age(t))
        return runners[0.0](x, v, v[:, None].expand(-1, len(SIGNS)))  # the template's zones

    print("uniform maps, 70 vs 30:", *row_profile(uniform(30.0), uniform(70.0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
