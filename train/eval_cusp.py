"""Evaluate CUSP weights on the UTKFace test split: the age-edit number, reconstruction, and a grid.

    python -m train.eval_cusp --weights assets/cusp_utkface128.safetensors --n 200 --out docs/cusp_eval

Numbers (written to ``<out>.json``, the grid to ``<out>_grid.png``):
  * age_gap: mean predicted age of edits to target 70 minus that of edits to target 10 (the same faces,
    custom preservation (8, 4.5)). Predicted by C, *which CUSP also uses in training* (L_C and the mask):
    no independent age estimator is shipped yet, so this number is optimistic; the evaluation issue
    (#7) adds one;
  * reconstruction: target = the face's own age, sigma_m = sigma_g = 0; L1 on [0, 1] pixels and PSNR;
  * the identity copy (output = input) is reported beside as the baseline.
Test faces are UTKFace aligned crops, i.e. already in the canonical frame: no detection is involved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceage.cusp_mask import PRESETS, blur_skip
from faceage.editor import CUSPEditor

GRID_AGES = (5, 15, 25, 35, 50, 65, 80)


def test_faces(n: int, size: int):
    from faceage.data.utkface import UTKFace

    ds = UTKFace(split="test", size=size, verify=False)
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int)  # spread over the split, deterministic
    items = [ds[int(i)] for i in idx]
    return torch.stack([it[0] for it in items]), torch.tensor([float(it[1]) for it in items])


@torch.no_grad()
def edit_batch(ed: CUSPEditor, x, ages, sigma_m, sigma_g, batch=25):
    outs = []
    for i in range(0, len(x), batch):
        st = ed.prepare(x[i:i + batch].to(ed.device))
        skip = blur_skip(st.f_c, st.mask, sigma_m, sigma_g)
        outs.append(ed.T.decode(st.c, skip, st.s, ages[i:i + batch].to(ed.device)).clamp(-1, 1).cpu())
    return torch.cat(outs)


@torch.no_grad()
def predicted_age(ed: CUSPEditor, x) -> torch.Tensor:
    return torch.cat([ed.C.expected_age(ed.C.from_canonical(x[i:i + 50])) for i in range(0, len(x), 50)])


def psnr(a, b) -> float:
    mse = (((a - b) / 2) ** 2).mean().item()
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def evaluate(weights: Path | None, n: int) -> tuple[dict, np.ndarray]:
    ed = CUSPEditor.load(weights, device="cpu")
    x, ages = test_faces(n, ed.resolution)
    sm, sg = PRESETS["custom preservation"]
    res = {"weights": str(weights or "shipped"), "n_faces": n, "preset_custom": [sm, sg], "age_estimator": "C (used in training)"}
    for target in (10, 70):
        out = edit_batch(ed, x, torch.full((n,), float(target)), sm, sg)
        res[f"pred_age_target_{target}"] = predicted_age(ed, out).mean().item()
    res["age_gap_70_minus_10"] = res["pred_age_target_70"] - res["pred_age_target_10"]
    res["pred_age_inputs"] = predicted_age(ed, x).mean().item()
    rec = edit_batch(ed, x, ages.clamp(max=100), 0.0, 0.0)
    res["recon_L1_01"] = ((rec - x).abs() / 2).mean().item()
    res["recon_PSNR_dB"] = psnr(rec, x)
    res["identity_copy"] = {"recon_L1_01": 0.0, "age_gap_70_minus_10": 0.0}
    return res, grid(ed, x[:: max(1, n // 6)][:6], sm, sg)


def grid(ed, faces, sm, sg) -> np.ndarray:
    """Rows: faces; columns: input, mask M, then the edit at each age of GRID_AGES."""
    rows = []
    for f in faces:
        st = ed.prepare(f[None])
        cols = [f, st.mask[0].expand(3, -1, -1) * 2 - 1]
        cols += [edit_batch(ed, f[None], torch.tensor([float(a)]), sm, sg)[0] for a in GRID_AGES]
        rows.append(torch.cat(cols, dim=2))
    img = torch.cat(rows, dim=1)
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("docs/cusp_eval"))
    a = p.parse_args(argv)
    torch.manual_seed(0)
    res, img = evaluate(a.weights, a.n)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(json.dumps(res, indent=2))
    Image.fromarray(img).save(f"{a.out}_grid.png")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
