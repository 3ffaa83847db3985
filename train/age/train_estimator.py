"""Train the evaluation age estimator A (faceage/age/estimator.py) on the UTKFace training split.

    python -m train.pack_data --split train --size 128 --out packed/utkface_train_128.safetensors
    python -m train.pack_data --split test --size 128 --out packed/utkface_test_128.safetensors
    python -m train.age.train_estimator --train packed/utkface_train_128.safetensors \
        --test packed/utkface_test_128.safetensors --epochs 8 --out assets/age_estimator_A.safetensors

The last ``--val`` faces of a fixed shuffle of the training split are held out to pick the best
epoch; the test split is used once, at the end, for the MAE written into the weights' manifest.
Augmentation: horizontal flip, a shift of up to 4 px (reflect padding) and brightness/contrast jitter.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceage.age.estimator import INPUT_SIZE, AgeEstimator, label_distribution
from faceage.checkpoint import save_checkpoint
from faceage.data.utkface import PackedFaces


def to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,S,S,3]`` faces -> float ``[N,3,64,64]`` in ``[-1,1]`` (the estimator's input)."""
    x = images_u8.permute(0, 3, 1, 2).float() / 127.5 - 1
    if x.shape[-1] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = 4
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()  # one shift per batch: cheap
    x = xp[:, :, dy : dy + INPUT_SIZE, dx : dx + INPUT_SIZE]
    gain = 1 + 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    bias = 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    return (x * gain + bias).clamp(-1, 1)


def loss_fn(logits: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
    """Label-distribution cross-entropy plus the L1 of the expected age (in decades, to balance the two)."""
    ce = -(label_distribution(ages) * logits.log_softmax(dim=1)).sum(dim=1).mean()
    return ce + (AgeEstimator.expected_age(logits) - ages).abs().mean() / 10


@torch.no_grad()
def mae(net: AgeEstimator, x: torch.Tensor, ages: torch.Tensor) -> float:
    was = net.training
    net.eval()
    pred = net.age(x)
    net.train(was)
    return (pred - ages.float()).abs().mean().item()


def fit(
    x: torch.Tensor,
    ages: torch.Tensor,
    *,
    epochs: int,
    batch: int = 128,
    lr: float = 3e-3,
    val: int = 1000,
    seed: int = 0,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    max_minutes: float | None = None,
    quiet: bool = False,
) -> tuple[AgeEstimator, dict]:
    """Train A on inputs ``x`` ``[N,3,64,64]`` with true ``ages``; returns the best-on-validation net and a log."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    val = min(val, len(x) // 5)
    tr, va = order[: len(x) - val], order[len(x) - val :]
    net = AgeEstimator(widths)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = max(1, len(tr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    log: dict = {"epoch_loss": [], "val_mae": [], "n_train": len(tr), "n_val": len(va)}
    best, best_state, start = float("inf"), None, time.monotonic()
    for epoch in range(epochs):
        perm = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for i in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=quiet, leave=False):
            idx = perm[i * batch : (i + 1) * batch]
            loss = loss_fn(net(augment(x[idx], gen)), ages[idx].float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log["epoch_loss"].append(total / steps_per_epoch)
        log["val_mae"].append(mae(net, x[va], ages[va]))
        if not quiet:
            print(
                f"epoch {epoch + 1}: loss {log['epoch_loss'][-1]:.4f}  val MAE {log['val_mae'][-1]:.2f} y", flush=True
            )
        if log["val_mae"][-1] < best:
            best, best_state = log["val_mae"][-1], {k: v.clone() for k, v in net.state_dict().items()}
        if max_minutes and (time.monotonic() - start) / 60 > max_minutes:
            break
    net.load_state_dict(best_state)
    log.update(best_val_mae=best, epochs_run=len(log["val_mae"]), minutes=(time.monotonic() - start) / 60)
    return net.eval(), log


def load_packed(path: Path) -> tuple[torch.Tensor, torch.Tensor]:

    faces = PackedFaces(path)
    x = torch.cat([to_input(faces.images[i : i + 2048]) for i in range(0, len(faces), 2048)])
    return x, faces.ages.clone()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=Path, required=True, help="packed training split (train.pack_data)")
    p.add_argument("--test", type=Path, required=True, help="packed test split, for the reported MAE")
    p.add_argument("--out", type=Path, default=Path("assets/age_estimator_A.safetensors"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for path in (a.train, a.test):
        if not path.is_file():
            print(f"error: no packed faces at {path}; make it with python -m train.pack_data", file=sys.stderr)
            return 2
    x, ages = load_packed(a.train)
    net, log = fit(x, ages, epochs=a.epochs, batch=a.batch, lr=a.lr, seed=a.seed, max_minutes=a.max_minutes)
    xt, at = load_packed(a.test)
    test_mae = mae(net, xt, at)
    info = {
        "kind": "age-estimator",
        "widths": list(net.widths),
        "input": "canonical UTKFace frame resized to 64 px, [-1,1]",
        "train": {
            "data": "UTKFace training split",
            "n_train": log["n_train"],
            "n_val": log["n_val"],
            "epochs": log["epochs_run"],
            "batch": a.batch,
            "lr": a.lr,
            "seed": a.seed,
            "minutes": round(log["minutes"], 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads",
            "epoch_loss": log["epoch_loss"],
            "val_mae": log["val_mae"],
        },
        "test_mae_years": round(test_mae, 3),
        "n_test": len(xt),
    }
    save_checkpoint(a.out, net.state_dict(), info)
    print(f"wrote {a.out}: best val MAE {log['best_val_mae']:.2f} y, test MAE {test_mae:.2f} y on {len(xt)} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
