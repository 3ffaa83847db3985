"""Training losses as small pure functions named after the papers' terms.

CUSP (Sec. 3.3): L_r (Eq. 3), L_C (mean-variance loss through C, Pan et al. CVPR 2018), L_D (StyleGAN2's
non-saturating logistic loss), L_cy (Eq. 4), and the R1 penalty (Mescheder et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: L_r (Eq. 3) and L_cy (Eq. 4)."""
    return (a - b).abs().mean()


def mean_variance_loss(
    logits: torch.Tensor, age: torch.Tensor, class_ages: torch.Tensor, w_mean: float = 0.2, w_var: float = 0.05
) -> torch.Tensor:
    """Mean-variance loss [Pan et al. 2018]: softmax CE + w_mean (E[a]-y)^2/2 + w_var Var[a].

    ``class_ages`` [K] are the ages of C's classes; targets are clamped to their range and the CE target
    is the nearest class.
    """
    y = age.to(logits.dtype).clamp(class_ages[0], class_ages[-1])
    p = logits.softmax(dim=1)
    mean = p @ class_ages
    var = (p * (class_ages[None, :] - mean[:, None]) ** 2).sum(dim=1)
    target = (class_ages[None, :] - y[:, None]).abs().argmin(dim=1)
    return F.cross_entropy(logits, target) + w_mean * ((mean - y) ** 2 / 2).mean() + w_var * var.mean()


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of L_D: softplus(-D(G(x, a_t), a_t))."""
    return F.softplus(-fake_logits).mean()


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator side of L_D: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: E ||grad_x D(x)||^2 on real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()
