"""Write an evaluation (train/eval/cusp.py) to disk: results.json, report.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from faceage.io import save_png

GROUP_COLUMNS = (
    ("age_mae_corrected", "Age MAE, corrected (y)", "{:.2f}"),
    ("age_mae", "Age MAE to target (y)", "{:.2f}"),
    ("gender_kept", "Gender kept (%)", "{:.1%}"),
    ("id_dist", "Identity dist.", "{:.3f}"),
    ("id_same", "Same person (%)", "{:.1%}"),
    ("kid", "KID", "{:.4f}"),
    ("fid", "FID", "{:.1f}"),
    ("blur", "Sharpness (var. Laplacian)", "{:.0f}"),
)


def _fmt(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return fmt.format(value).replace("%", "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _rows_by_setting(res: dict, task: str):
    for name, m in res["methods"].items():
        for preset, block in m[task].items():
            yield (name if preset == "-" else f"{name}, {preset}"), block


def age_group_tables(res: dict) -> list[str]:
    cols = [c for c in GROUP_COLUMNS if any(c[0] in b["mean"] for _, b in _rows_by_setting(res, "age_groups"))]
    lines = ["### Means over the age groups", ""]
    lines += _table(
        ["Method", *(c[1] for c in cols)],
        [[label, *(_fmt(f, b["mean"].get(k)) for k, _, f in cols)] for label, b in _rows_by_setting(res, "age_groups")],
    )
    for key, title, fmt in (
        ("pred_age", "Mean age predicted by A per target group (real faces of the group: see above)", "{:.1f}"),
        ("age_mae_corrected", "Age MAE (corrected) per target group", "{:.2f}"),
        ("gender_kept", "Gender preservation (%) per target group", "{:.1%}"),
        ("kid", "KID per target group", "{:.4f}"),
    ):
        if not any(key in b["mean"] for _, b in _rows_by_setting(res, "age_groups")):
            continue
        lines += [f"### {title}", ""]
        lines += _table(
            ["Method", *res["groups"], "Mean"],
            [
                [label, *(_fmt(fmt, b["per_group"][g].get(key)) for g in res["groups"]), _fmt(fmt, b["mean"].get(key))]
                for label, b in _rows_by_setting(res, "age_groups")
            ],
        )
    return lines


def report(res: dict) -> str:
    real, est = res["real"], res.get("estimator", {})
    lines = [
        "# faceage evaluation on the UTKFace test split",
        "",
        f"Command: `{res.get('command', 'python -m train.eval.cusp')}`. Every figure is in `results.json`.",
        "",
        f"- Faces: {res['n_faces']} of the {res['n_test_split']} test-split faces, spread evenly over the split "
        f"(all ages), at {res['resolution']} px.",
        f"- Age judge: estimator A, not used in training; its MAE on the {res['n_test_split']} real test faces is "
        f"{real['estimator_mae_on_test_split']:.2f} years (manifest: {est.get('test_mae_years')}). *Corrected* MAE is "
        "the distance to A's mean prediction on the real test faces of the target group (CUSP paper Sec. 4.1).",
        "- Identity: dlib 128-d embeddings, distance input vs output; *same person* = distance < 0.6.",
        "- Gender: dlib's gender classifier, input vs output. Realism: KID/FID of Inception-v3 features against "
        "the real test faces of the target group (up to 250 per group; small groups make FID noisy).",
        "- Sharpness is the variance of the Laplacian (the paper's Blur column, higher = sharper here).",
        "- LPIPS needs weights that cannot be downloaded here: `1 - SSIM` stands in for it and is named so.",
        "",
        "## Age-group task (paper Table 3)",
        "",
        "Group centres: " + ", ".join(f"{g} -> {c:g}" for g, c in zip(res["groups"], res["group_centres"])) + ".",
        "",
        "A's mean prediction on real test faces per group: "
        + ", ".join(f"{g}: {a:.1f}" for g, a in zip(res["groups"], real["group_mean_age_A"]))
        + ".",
        "",
        *age_group_tables(res),
        "## Young -> old, target 60 (paper Table 2)",
        "",
        f"Real test faces aged 58-62, judged by A: {real['age_60_A_mean']:.1f} +- {real['age_60_A_std']:.1f} years, "
        f"sharpness {real['blur']:.0f}.",
        "",
        *_table(
            ["Method", "Predicted age", "Sharpness", "Gender kept", "Identity dist.", "Same person"],
            [
                [
                    label,
                    f"{b['pred_age']:.1f} +- {b['pred_age_std']:.1f}",
                    f"{b['blur']:.0f}",
                    _fmt("{:.1%}", b["gender_kept"]),
                    f"{b['id_dist']:.3f}",
                    _fmt("{:.1%}", b["id_same"]),
                ]
                for label, b in _rows_by_setting(res, "young_to_old")
            ],
        ),
        "## Reconstruction (target = own age)",
        "",
        *_table(
            ["Method", "L1 [0,1]", "PSNR (dB)", "SSIM", "1 - SSIM (LPIPS substitute)"],
            [
                [label, f"{b['l1']:.4f}", f"{b['psnr']:.2f}", f"{b['ssim']:.3f}", f"{b['one_minus_ssim']:.3f}"]
                for label, b in _rows_by_setting(res, "reconstruction")
            ],
        ),
    ]
    for name, m in res["methods"].items():
        if "age_gap" in m:
            g = m["age_gap"]
            lines += [
                f"**{name}: age gap, {g.get('n_faces', res['n_faces'])} faces.** Mean A-predicted age of edits "
                f"to 70 minus edits to 10 (custom preset): {g['pred_age_target_70']:.1f} - "
                f"{g['pred_age_target_10']:.1f} = **{g['gap_70_minus_10']:.1f} years**.",
                "",
            ]
            if "sigma0_own_age_l1" in g:
                lines += [
                    f"Same faces, sigma 0 at their own age: L1 {g['sigma0_own_age_l1']:.3f} (images in [0, 1]), "
                    f"PSNR {g['sigma0_own_age_psnr']:.1f} dB.",
                    "",
                ]
        if "sigma_sweep" in m:
            lines += [
                f"## Sigma sweep, {name} (paper Fig. 7)",
                "",
                f"![sigma sweep](sweep_{_slug(name)}.png)",
                "",
                f"On {m['sigma_sweep']['n_faces']} faces spread over the split; "
                "left: corrected age MAE over all groups, "
                "right: 1 - SSIM at the own age.",
                "",
            ]
    lines += [
        "## Examples",
        "",
        "![grid](grid.png)",
        "",
        "Rows: test faces; columns: input, mask M, then targets 5, 15, 25, 35, 50, 65, 80 (custom preset).",
        "",
    ]
    return "\n".join(lines)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()


def sweep_plot(sweep: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    sig = sweep["sigmas"]
    for ax, key, label in zip(
        axes, ("age_mae_corrected", "one_minus_ssim"), ("Age MAE, corrected (years)", "1 - SSIM (LPIPS substitute)")
    ):
        data = np.asarray(sweep[key])
        im = ax.imshow(data, origin="lower", cmap="viridis")
        ax.set_xticks(range(len(sig)), [f"{s:g}" for s in sig])
        ax.set_yticks(range(len(sig)), [f"{s:g}" for s in sig])
        ax.set_xlabel("sigma_g")
        ax.set_ylabel("sigma_m")
        ax.set_title(label)
        for (i, k), v in np.ndenumerate(data):
            ax.text(k, i, f"{v:.2f}" if v < 10 else f"{v:.1f}", ha="center", va="center", color="w", fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(res: dict, out: Path, grid: np.ndarray | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    for name, m in res["methods"].items():
        if "sigma_sweep" in m:
            sweep_plot(m["sigma_sweep"], out / f"sweep_{_slug(name)}.png", f"{name}: sigma sweep")
    if grid is not None:
        save_png(grid, out / "grid.png")
    (out / "report.md").write_text(report(res))
