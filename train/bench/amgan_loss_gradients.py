"""How hard each term of AMGAN's training losses pushes: gradient norms per term, G's step and D's.

    OMP_NUM_THREADS=1 PYTHONPATH=. python train/bench/amgan_loss_gradients.py [--run runs/amgan128cpu] \\
        [--packed packed/utkface_test_128.safetensors] [--n 8] [--seed 0] [--no-d]

Loads the newest readable checkpoint of ``--run`` (G, D and their config, as ``train.train`` resumes;
fresh networks of ``--config`` when the run has none), takes a batch of ``n`` faces of the packed split
with their weak sign labels (synthetic faces without the pack), and builds one training step's patches
and targets with the trainer's own code (:meth:`AMGANTrainer.prepare`). For each term of G's loss
(:meth:`AMGANTrainer.generator_terms`: WGAN -D(fake), cycle, L_Age on D's 10x10 map, L_Loc, attention
regulariser; the latter also split into its mask and TV parts) it prints the unweighted value, the weight
the step gives it, and the norm of the gradient of (weight x term) with respect to

* all of G's parameters, flattened into one vector (``|dG|``), and
* the generated patches ``fake`` = G(I_p | A_t) (``|dfake|``; the cycle term reaches ``fake`` through G's
  second pass, the attention term only through the cycle pass's mask),

and each term's share of the total: ``|dG| / |dG total|`` (norms do not add up) and the projection
``<dG_term, dG_total> / |dG_total|^2`` (these add up to 1 over the terms). The same for D's terms
(:meth:`AMGANTrainer.discriminator_terms` plus the gradient penalty) with respect to D's parameters.
The last line lists the terms by |dG|. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from faceage.data.utkface import PackedFaces
from train.amgan import losses as amgan_losses
from train.amgan.data import with_sign_labels
from train.amgan.trainer import AMGANTrainer, weighted_sum
from train.batches import SyntheticFaces, get_batch
from train.config import TrainConfig, load_config
from train.ema import requires_grad
from train.train import newest_checkpoint


def load_run(run: Path, config: Path) -> tuple[AMGANTrainer, str]:
    """The trainer with the newest readable checkpoint of ``run`` loaded, or fresh from ``config``."""
    found = newest_checkpoint(run)
    if found is None:
        print(f"(no checkpoint in {run}: fresh networks of {config}, D is an untrained critic)")
        return AMGANTrainer(load_config(config), torch.device("cpu")), f"fresh init ({config})"
    path, tensors, manifest = found
    trainer = AMGANTrainer(TrainConfig.from_dict(manifest["config"], saved=True), torch.device("cpu"))
    trainer.load_state(tensors, manifest["trainer"], manifest["step"])
    return trainer, f"{path} (step {manifest['step']})"


def faces(packed: Path, n: int, size: int, seed: int):
    """(x, age, signs) of ``n`` faces, as the trainer's batches (``get_batch`` of sign-labelled faces)."""
    if packed.is_file():
        base = PackedFaces(packed)
        if base.size == size:
            return get_batch(with_sign_labels(base), 0, n, seed, False), f"{packed}"
        print(f"({packed} holds {base.size} px faces, the model {size} px: synthetic faces)")
    else:
        print(f"({packed} not found: synthetic faces)")
    ds = with_sign_labels(SyntheticFaces(n=max(n, 16), size=size, seed=seed))
    return get_batch(ds, 0, n, seed, False), "synthetic faces"


def grad_norms(loss: torch.Tensor, params: list[torch.Tensor], extra: torch.Tensor | None):
    """(|d loss / d params| flattened, the flat gradient, |d loss / d extra| or None)."""
    inputs = params + ([extra] if extra is not None else [])
    grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
    g_extra = None
    if extra is not None:
        g_extra = 0.0 if grads[-1] is None else grads[-1].norm().item()
    return flat.norm().item(), flat, g_extra


def table(
    title: str, terms: dict, weights: dict, params: list, extra: torch.Tensor | None, parts: dict | None = None
) -> dict[str, float]:
    """Print one row per term (``parts``: sub-rows, not counted in the total); returns |d params| per term."""
    total = weighted_sum(terms, weights)
    t_norm, t_flat, t_extra = grad_norms(total, params, extra)
    x_head = f"{'|dfake|':>10}" if extra is not None else ""
    print(f"\n{title}")
    print(
        f"  {'term':<10}{'value':>11}{'weight':>9}{'w x value':>11}{'|dparams|':>11}{x_head}"
        f"{'|d|/|dtot|':>11}{'proj share':>11}"
    )
    out = {}
    rows = [(k, terms[k], weights[k], True) for k in terms]
    rows += [(k, v, w, False) for k, (v, w) in (parts or {}).items()]
    for k, v, w, counted in rows:
        norm, flat, g_x = grad_norms(w * v, params, extra)
        proj = float(flat @ t_flat) / max(t_norm**2, 1e-30)
        x_col = f"{g_x:>10.4g}" if extra is not None else ""
        name = k if counted else f"  {k}"
        print(
            f"  {name:<10}{v.item():>11.4g}{w:>9.3g}{(w * v).item():>11.4g}{norm:>11.4g}{x_col}"
            f"{norm / max(t_norm, 1e-30):>11.3f}{proj:>11.3f}"
        )
        if counted:
            out[k] = norm
    x_col = f"{t_extra:>10.4g}" if extra is not None else ""
    print(f"  {'total':<10}{'':>11}{'':>9}{total.item():>11.4g}{t_norm:>11.4g}{x_col}{1.0:>11.3f}{1.0:>11.3f}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/amgan128cpu"))
    p.add_argument(
        "--config",
        type=Path,
        default=Path("train/configs/amgan_utkface128.toml"),
        help="the networks' config when the run has no checkpoint",
    )
    p.add_argument("--packed", type=Path, default=Path("packed/utkface_test_128.safetensors"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="which faces, targets and patch corners")
    p.add_argument("--no-d", action="store_true", help="skip D's terms")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    tr, source = load_run(a.run, a.config)
    tr.rng.manual_seed(a.seed)  # targets and corners depend on --seed only, not on the checkpoint's RNG
    (x, age, signs), data = faces(a.packed, a.n, tr.resolution, a.seed)
    t = tr.t
    print(f"weights: {source}; data: {data}; {len(x)} faces, {tr.resolution} px, {t.patch} px patches")

    b = tr.prepare(x, age, signs)
    requires_grad(tr.G, True)
    requires_grad(tr.D, False)
    terms, out = tr.generator_terms(b)
    fake = out["fake"]
    mask = amgan_losses.attention_loss(out["att_fake"], 1.0, 0.0) + amgan_losses.attention_loss(
        out["att_cyc"], 1.0, 0.0
    )
    tv = amgan_losses.attention_loss(out["att_fake"], 0.0, 1.0) + amgan_losses.attention_loss(out["att_cyc"], 0.0, 1.0)
    parts = {"att.mask": (mask, t.lambda_mask), "att.tv": (tv, t.lambda_tv)}
    g = table(
        "G step (d/d G's parameters; d/d fake patches)",
        terms,
        tr.generator_weights(),
        list(tr.G.parameters()),
        fake,
        parts,
    )
    print(
        f"  (mean attention A on fakes {out['att_fake'].mean().item():.3f}; att = lambda_mask mean(A) + "
        f"lambda_tv TV(A) of both passes, lambda_mask {t.lambda_mask:g}, lambda_tv {t.lambda_tv:g})"
    )

    if not a.no_d:
        requires_grad(tr.G, False)
        requires_grad(tr.D, True)
        d_terms = tr.discriminator_terms(b, fake.detach())
        eps = torch.rand(len(x), generator=tr.rng)  # as AMGANTrainer._gradient_penalty_grads draws them
        d_terms["gp"] = amgan_losses.gradient_penalty(tr.D, b["I_p"], fake.detach(), eps)
        table(
            "D step (d/d D's parameters)",
            d_terms,
            {**tr.discriminator_weights(), "gp": t.lambda_gp},
            list(tr.D.parameters()),
            None,
        )

    ranked = sorted(g.items(), key=lambda kv: -kv[1])
    (k1, n1), (k2, n2) = ranked[0], ranked[1]
    print(
        f"\nG |dparams| by term: {', '.join(f'{k} {v:.4g}' for k, v in ranked)}; "
        f"{k1}/{k2} {n1 / max(n2, 1e-30):.2f}x, {k1}/adv {n1 / max(g['adv'], 1e-30):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
