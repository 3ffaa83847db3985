"""Evaluate CUSP checkpoints on the fixed UTKFace test split: the CUSP paper's tasks, offline.

    python -m train.eval.cusp --out docs/eval                       # the shipped weights, N = 1000
    python -m train.eval.cusp --n 100 --sweep-n 40 --out docs/eval   # what docs/eval was made with (CPU)
    python -m train.eval.cusp --weights runs/x/export.safetensors --baseline old=assets/old.safetensors

Methods: every CUSP weights file given, plus the identity copy (output = input) as a baseline on every
table. Judges (train/eval/metrics.py): estimator A for age (not C, which CUSP trains against), dlib's
128-d embeddings for identity, dlib's gender classifier, Inception features for KID/FID.

Tasks (paper Sec. 4.1):
  * age groups: N test faces spread evenly over the split (:func:`spread`) translated to the centre of each age group of
    faceage.data.ages, with the high / custom / low preservation presets (Tables 2-3). Age MAE is reported
    to the nominal target and, as the paper corrects for its judge's bias, to A's mean prediction on the
    real test faces of the target group ("corrected"); KID/FID against the real test faces of that group;
  * young -> old: test faces aged 20-29 translated to 60 (Table 2); the "real" row is A on real test
    faces aged 58-62;
  * reconstruction: target = the face's own age; sigma 0 and each preset: L1, PSNR, SSIM, 1 - SSIM
    (the LPIPS substitute: LPIPS cannot be had offline);
  * sigma sweep (Fig. 7): corrected age MAE over all groups and 1 - SSIM at the own age, over a grid of
    sigma_m x sigma_g, drawn as heat maps;
  * the headline numbers of the CUSP issue, on ``--gap-n`` faces (default N): mean A-predicted age of edits
    to 70 minus edits to 10 (custom preset), and the sigma-0 edit to the own age against the input (L1, PSNR).
Writes ``<out>/results.json`` (every figure), ``<out>/report.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from faceage.cusp.editor import CUSPEditor
from faceage.cusp.mask import PRESETS, blur_skip, cusp_mask
from faceage.data.ages import AGE_GROUPS, GROUP_NAMES, age_to_group, group_centre
from faceage.data.utkface import PackedFaces, UTKFace
from faceage.errors import FaceAgeError
from train.eval import metrics
from train.eval.metrics import Judges
from train.eval.report import write_report

SWEEP_SIGMAS = (0.0, 2.0, 4.0, 6.0, 8.0)
YOUNG, OLD_TARGET, OLD_REAL = (20, 29), 60.0, (58, 62)


@dataclass
class Faces:
    """Canonical-frame test faces ``x`` ``[N,3,S,S]`` in [-1,1] with their true ages."""

    x: torch.Tensor
    ages: torch.Tensor

    def take(self, idx) -> Faces:
        return Faces(self.x[idx], self.ages[idx])


class Identity:
    """The identity copy: output = input (the baseline every table carries)."""

    name = "identity copy"

    def encode(self, x):
        return x

    def decode(self, state, ages, sigma_m, sigma_g):
        return state


class CUSPMethod:
    """A CUSP weights file; ``encode`` is the per-photo work (mask + encoders), ``decode`` one edit."""

    def __init__(self, name: str, weights: str | Path | None, device: str = "cpu", batch: int = 50) -> None:

        self.name, self.batch = name, batch
        self.ed = CUSPEditor.load(weights, device=device)
        self.resolution = self.ed.resolution

    @torch.no_grad()
    def encode(self, x):
        states = []
        for i in range(0, len(x), self.batch):
            xb = x[i : i + self.batch].to(self.ed.device)
            states.append((cusp_mask(self.ed._classify, xb), *self.ed.T.encode(xb)))
        return states

    @torch.no_grad()
    def decode(self, states, ages, sigma_m, sigma_g):
        out, i = [], 0
        for mask, c, f_c, s in states:
            a = ages[i : i + len(c)].to(self.ed.device)
            out.append(self.ed.T.decode(c, blur_skip(f_c, mask, sigma_m, sigma_g), s, a).clamp(-1, 1).cpu())
            i += len(c)
        return torch.cat(out)


def load_test_faces(size: int, packed: Path | None) -> Faces:
    """The whole test split, in the split's fixed order, at ``size`` px."""
    import torch.nn.functional as F

    if packed is not None:
        pf = PackedFaces(packed)
        x, ages = pf.images.permute(0, 3, 1, 2).float() / 127.5 - 1, pf.ages.float()
    else:
        ds = UTKFace(split="test", size=size, verify=False)
        items = [ds[i] for i in range(len(ds))]
        x, ages = torch.stack([it[0] for it in items]), torch.tensor([float(it[1]) for it in items])
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return Faces(x, ages)


def spread(total: int, n: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``0..total-1``.

    The test split is listed in file-name order, which starts with the age, so its first N faces are the
    youngest: taking them would judge aging on children only. Evenly spaced indices follow the split's
    own age distribution instead, and stay fixed from run to run.
    """
    n = min(n, total)
    return torch.linspace(0, total - 1, n).round().long() if n > 1 else torch.zeros(n, dtype=torch.long)


class Evaluation:
    """Runs the tasks for several methods against the same faces and judges; :attr:`results` is the JSON."""

    def __init__(
        self,
        test: Faces,
        judges: Judges,
        n: int,
        sweep_n: int,
        real_per_group: int = 250,
        realism: bool = True,
        seed: int = 0,
        gap_n: int | None = None,
    ) -> None:
        self.test, self.j, self.realism = test, judges, realism
        self.faces = test.take(spread(len(test.x), n))
        self.sweep = test.take(spread(len(test.x), sweep_n))
        self.gap_faces = test.take(spread(len(test.x), gap_n or n))
        groups = torch.tensor([age_to_group(float(a)) for a in test.ages])
        gen = torch.Generator().manual_seed(seed)
        self.real_idx = [torch.nonzero(groups == g).flatten() for g in range(len(AGE_GROUPS))]
        self.real_idx = [ix[torch.randperm(len(ix), generator=gen)[:real_per_group]] for ix in self.real_idx]
        real_age = judges.age(test.x)
        self.group_mean_age = [real_age[groups == g].mean().item() for g in range(len(AGE_GROUPS))]
        old = (test.ages >= OLD_REAL[0]) & (test.ages <= OLD_REAL[1])
        self.results: dict = {
            "n_faces": len(self.faces.x),
            "n_test_split": len(test.x),
            "resolution": test.x.shape[-1],
            "groups": list(GROUP_NAMES),
            "group_centres": [group_centre(g) for g in range(len(AGE_GROUPS))],
            "real": {
                "group_counts": [int((groups == g).sum()) for g in range(len(AGE_GROUPS))],
                "group_mean_age_A": self.group_mean_age,
                "estimator_mae_on_test_split": (real_age - test.ages).abs().mean().item(),
                "age_60_A_mean": real_age[old].mean().item(),
                "age_60_A_std": real_age[old].std().item(),
                "blur": metrics.blur(test.x[old]).mean().item(),
            },
            "methods": {},
        }
        self.real_features = [judges.features(test.x[ix]) for ix in self.real_idx] if realism else None
        self.shapes = judges.landmarks(self.faces.x)
        self.emb = judges.identity(self.faces.x, self.shapes)
        self.gender = judges.gender(self.faces.x)

    def preservation(self, faces: Faces, edits: torch.Tensor, shapes=None, emb=None, gender=None) -> dict:
        shapes = self.shapes if shapes is None else shapes
        emb = self.emb if emb is None else emb
        gender = self.gender if gender is None else gender
        dist = (self.j.identity(edits, shapes) - emb).norm(dim=1)
        return {
            "id_dist": dist.mean().item(),
            "id_same": (dist < metrics.SAME_PERSON).float().mean().item(),
            "gender_kept": (self.j.gender(edits) == gender).float().mean().item(),
            "blur": metrics.blur(edits).mean().item(),
        }

    def age_groups(self, method, states) -> dict:
        out = {}
        presets = {"-": (0.0, 0.0)} if isinstance(method, Identity) else PRESETS
        for preset, (sm, sg) in presets.items():
            rows = {}
            for g, name in enumerate(tqdm(GROUP_NAMES, desc=f"{method.name}: {preset}", leave=False)):
                target = group_centre(g)
                edits = method.decode(states, torch.full((len(self.faces.x),), target), sm, sg)
                pred = self.j.age(edits)
                row = {
                    "age_mae": (pred - target).abs().mean().item(),
                    "age_mae_corrected": (pred - self.group_mean_age[g]).abs().mean().item(),
                    "pred_age": pred.mean().item(),
                    **self.preservation(self.faces, edits),
                }
                if self.realism:
                    fake = self.j.features(edits)
                    row["kid"], row["kid_std"] = metrics.kid(self.real_features[g], fake)
                    row["fid"] = max(metrics.fid(self.real_features[g], fake), 0.0)
                rows[name] = row
            keys = rows[GROUP_NAMES[0]].keys()
            out[preset] = {
                "sigma": [sm, sg],
                "per_group": rows,
                "mean": {k: float(np.nanmean([r[k] for r in rows.values()])) for k in keys},
            }
        return out

    def young_to_old(self, method) -> dict:
        young = torch.nonzero((self.test.ages >= YOUNG[0]) & (self.test.ages <= YOUNG[1])).flatten()
        young = young[spread(len(young), len(self.faces.x))]
        faces = self.test.take(young)
        states, shapes = method.encode(faces.x), self.j.landmarks(faces.x)
        emb, gender = self.j.identity(faces.x, shapes), self.j.gender(faces.x)
        presets = {"-": (0.0, 0.0)} if isinstance(method, Identity) else PRESETS
        out = {}
        for preset, (sm, sg) in presets.items():
            edits = method.decode(states, torch.full((len(young),), OLD_TARGET), sm, sg)
            pred = self.j.age(edits)
            out[preset] = {
                "pred_age": pred.mean().item(),
                "pred_age_std": pred.std().item() if len(pred) > 1 else float("nan"),
                "n": len(young),
                **self.preservation(faces, edits, shapes, emb, gender),
            }
        return out

    def reconstruction(self, method, states) -> dict:
        presets = {"-": (0.0, 0.0)} if isinstance(method, Identity) else {"sigma 0": (0.0, 0.0), **PRESETS}
        out = {}
        for preset, (sm, sg) in presets.items():
            rec = method.decode(states, self.faces.ages.clamp(max=100), sm, sg)
            s = metrics.ssim(rec, self.faces.x)
            out[preset] = {
                "l1": metrics.l1(rec, self.faces.x).mean().item(),
                "psnr": metrics.psnr(rec, self.faces.x).mean().item(),
                "ssim": s.mean().item(),
                "one_minus_ssim": (1 - s).mean().item(),
            }
        return out

    def age_gap(self, method) -> dict:
        """The two headline numbers on ``gap_n`` faces: A's age of edits to 70 minus edits to 10 (custom
        preset), and the sigma-0 edit to the face's own age against the input (L1 on [0, 1], PSNR)."""
        faces = self.gap_faces
        states, n = method.encode(faces.x), len(faces.x)
        sm, sg = PRESETS["custom preservation"]
        pred = {
            t: self.j.age(method.decode(states, torch.full((n,), float(t)), sm, sg)).mean().item() for t in (10, 70)
        }
        rec = method.decode(states, faces.ages.clamp(max=100), 0.0, 0.0)
        return {
            "n_faces": n,
            "pred_age_target_10": pred[10],
            "pred_age_target_70": pred[70],
            "gap_70_minus_10": pred[70] - pred[10],
            "sigma0_own_age_l1": metrics.l1(rec, faces.x).mean().item(),
            "sigma0_own_age_psnr": metrics.psnr(rec, faces.x).mean().item(),
        }

    def sigma_sweep(self, method) -> dict:
        states = method.encode(self.sweep.x)
        n = len(self.sweep.x)
        mae, lp = np.zeros((len(SWEEP_SIGMAS),) * 2), np.zeros((len(SWEEP_SIGMAS),) * 2)
        for i, sm in enumerate(tqdm(SWEEP_SIGMAS, desc=f"{method.name}: sigma sweep", leave=False)):
            for k, sg in enumerate(SWEEP_SIGMAS):
                errs = [
                    (
                        self.j.age(method.decode(states, torch.full((n,), group_centre(g)), sm, sg))
                        - self.group_mean_age[g]
                    )
                    .abs()
                    .mean()
                    .item()
                    for g in range(len(AGE_GROUPS))
                ]
                mae[i, k] = np.mean(errs)
                rec = method.decode(states, self.sweep.ages.clamp(max=100), sm, sg)
                lp[i, k] = (1 - metrics.ssim(rec, self.sweep.x)).mean().item()
        return {
            "sigmas": list(SWEEP_SIGMAS),
            "n_faces": n,
            "age_mae_corrected": mae.tolist(),
            "one_minus_ssim": lp.tolist(),
        }

    def run(self, method) -> dict:
        states = method.encode(self.faces.x)
        res = {
            "age_groups": self.age_groups(method, states),
            "young_to_old": self.young_to_old(method),
            "reconstruction": self.reconstruction(method, states),
        }
        if not isinstance(method, Identity):
            info = method.ed.info
            res["weights"] = {k: info.get(k) for k in ("file", "sha256", "step", "resolution")}
            res["age_gap"] = self.age_gap(method)
            res["sigma_sweep"] = self.sigma_sweep(method)
        self.results["methods"][method.name] = res
        return res


GRID_AGES = (5, 15, 25, 35, 50, 65, 80)


@torch.no_grad()
def example_grid(method: CUSPMethod, faces: torch.Tensor) -> np.ndarray:
    """Rows: faces; columns: input, the mask M, then the edit to each age of GRID_AGES (custom preset)."""
    sm, sg = PRESETS["custom preservation"]
    states = method.encode(faces)
    cols = [faces, torch.cat([st[0] for st in states]).expand(-1, 3, -1, -1) * 2 - 1]
    cols += [method.decode(states, torch.full((len(faces),), float(a)), sm, sg) for a in GRID_AGES]
    img = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)  # faces stacked down, columns across
    return metrics.to_uint8(img[None])[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="CUSP weights to judge (default: the shipped ones)")
    p.add_argument(
        "--baseline", action="append", default=[], metavar="NAME=PATH", help="earlier checkpoints to compare"
    )
    p.add_argument("--n", type=int, default=1000, help="N test faces spread evenly over the split (paper: 1000)")
    p.add_argument("--limit", type=int, default=None, help="quick run: cap N, the sweep and --gap-n at this many faces")
    p.add_argument("--sweep-n", type=int, default=100)
    p.add_argument(
        "--gap-n",
        type=int,
        default=None,
        help="faces for the age gap (70 vs 10) and the sigma-0 reconstruction (default: --n; issue #4: 200)",
    )
    p.add_argument("--packed", type=Path, default=None, help="packed test split (train.pack_data --split test)")
    p.add_argument("--estimator", default=None, help="age estimator A weights (default assets/age_estimator_A)")
    p.add_argument("--no-realism", action="store_true", help="skip KID/FID (no Inception network installed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/eval"))
    a = p.parse_args(argv)

    torch.manual_seed(a.seed)
    n, sweep_n = (min(a.n, a.limit), min(a.sweep_n, a.limit)) if a.limit else (a.n, a.sweep_n)
    try:
        methods = [CUSPMethod("CUSP" if a.weights else "CUSP (shipped)", a.weights, a.device)]
        methods += [CUSPMethod(spec.split("=", 1)[0], spec.split("=", 1)[-1], a.device) for spec in a.baseline]
        judges = Judges(a.device, a.estimator)
        ev = Evaluation(
            load_test_faces(methods[0].resolution, a.packed),
            judges,
            n,
            sweep_n,
            realism=not a.no_realism,
            seed=a.seed,
            gap_n=min(a.gap_n, a.limit) if a.limit and a.gap_n else a.gap_n,
        )
    except (FaceAgeError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ev.results["estimator"] = {
        "name": "A (faceage/age/estimator.py)",
        **{k: judges.estimator_info.get(k) for k in ("test_mae_years", "n_test")},
    }
    ev.results["command"] = "python -m train.eval.cusp " + " ".join(argv if argv is not None else sys.argv[1:])
    for m in [*methods, Identity()]:
        ev.run(m)
    write_report(ev.results, a.out, example_grid(methods[0], ev.faces.x[:: max(1, n // 6)][:6]))
    print(f"wrote {a.out}/report.md, results.json and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
