"""How hard L_C pushes on the image: our mean-variance loss vs the released code's double softmax.

    PYTHONPATH=. python train/bench/age_loss_gradient.py [--packed packed/utkface_test_128.safetensors] [--n 16]

The released CUSP code feeds C's *softmax* into a mean-variance loss that applies softmax again
(``../shared/design/cusp.md``, section 4, "Quirk"); the paper's lambda_C = 0.06 was tuned on that.
We compute the loss on C's logits (one softmax, as the paper and Pan et al. define it). This script
prints, for N test faces (or synthetic faces without the pack) and target ages 10 and 70, the loss and
the norm of its gradient with respect to the input image, both ways, and their ratio: the factor by
which lambda_C must shrink for our loss to push the image as hard as the release's did.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from faceage.age.classifier import AGE_WEIGHTS, AgeClassifier
from faceage.data.utkface import PackedFaces
from train.batches import SyntheticFaces
from train.cusp.losses import mean_variance_loss


def faces(packed: Path, n: int) -> torch.Tensor:
    if packed.is_file():
        ds = PackedFaces(packed)
        return torch.stack([ds[i][0] for i in range(0, len(ds), max(1, len(ds) // n))][:n]).float()

    print(f"({packed} not found: synthetic faces)")
    ds = SyntheticFaces(n=n, size=128, seed=0)
    return torch.stack([ds[i][0] for i in range(n)]).float()


def push(C, x: torch.Tensor, target: float, double_softmax: bool) -> tuple[float, float]:
    """(L_C, ||dL_C / dx||) for the batch ``x`` and one target age."""
    x = x.clone().requires_grad_(True)
    logits = C.from_canonical(x)
    if double_softmax:
        logits = logits.softmax(dim=1)  # what the release hands to its loss
    loss = mean_variance_loss(logits, torch.full((len(x),), target), torch.tensor(AGE_WEIGHTS))
    (grad,) = torch.autograd.grad(loss, x)
    return loss.item(), grad.norm().item()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packed", type=Path, default=Path("packed/utkface_test_128.safetensors"))
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--classifier", default="assets/age_classifier_C.safetensors")
    a = p.parse_args(argv)
    C = AgeClassifier.load(a.classifier).eval()
    x = faces(a.packed, a.n)
    print(f"{len(x)} faces, {x.shape[-1]} px")
    for target in (10.0, 70.0):
        (l1, g1), (l2, g2) = push(C, x, target, False), push(C, x, target, True)
        print(
            f"target {target:.0f}: ours L_C {l1:.1f}, |grad| {g1:.3f}; release (double softmax) L_C {l2:.1f}, "
            f"|grad| {g2:.3f}; ratio {g1 / g2:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
