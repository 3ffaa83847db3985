"""AgingMapGAN's training losses (Despois et al. 2020, Sec. 3.5, Eq. 1-4), our added terms, and Adam.

The networks are in :mod:`faceage.amgan.model`; :mod:`train.amgan.trainer` weighs these terms into one
step. Each term is a small pure function of G's and D's outputs:

    critic_loss, generator_adv_loss, gradient_penalty     L_WGAN with gradient penalty (Eq. 1)
    age_loss                                              L_Age: D's 10x10 aging map vs the target's (Eq. 2)
    loc_loss                                              L_Loc: D's (x, y) vs the patch centre (Eq. 3)
    cycle_loss                                            L_Cyc (Eq. 4), pixel + image-gradient L1
    attention_loss                                        GANimation's attention regulariser
    zone_leak_loss, edit_tone_loss, shift_consistency_loss, masked_mean    our per-sign and crop terms
    colour_shift_loss, chroma                             the evaluation's colour-cast measure

The cycle loss: the paper uses a perceptual loss (LPIPS-like); no pretrained perceptual network is available
offline, so :func:`cycle_loss` is L1 on pixels plus L1 on image gradients at 3 scales (full, 1/2, 1/4),
which weighs edges and wrinkle texture, not only colour. A young target asks G to smooth the skin, and the
cycle back cannot restore texture it removed: the gradient terms charge that loss on every scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceage.amgan.model import AGE_GRID
from faceage.filters import luma


@dataclass
class AMGANTrainDefaults:
    """Loss weights and optimiser settings of Sec. 3.5 (the attention weights are GANimation's)."""

    lambda_cyc: float = 100.0
    lambda_age: float = 100.0
    lambda_loc: float = 50.0
    lambda_gp: float = 10.0
    lambda_mask: float = 0.1  # ours (GANimation): the paper is silent
    lambda_tv: float = 1e-5  # ours (GANimation)
    lr_g: float = 7e-5
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)


def critic_loss(real_critic: torch.Tensor, fake_critic: torch.Tensor) -> torch.Tensor:
    """D's WGAN loss, -L_WGAN = E[D(fake)] - E[D(real)] (Eq. 1)."""
    return fake_critic.mean() - real_critic.mean()


def generator_adv_loss(fake_critic: torch.Tensor) -> torch.Tensor:
    """G's WGAN loss, -E[D(G(i, a))]."""
    return -fake_critic.mean()


def gradient_penalty(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """WGAN-GP [Gulrajani et al. 2017]: E[(||grad_x D(x)||_2 - 1)^2] on random interpolates.

    ``eps`` [N]: the interpolation weights (drawn uniformly here when None; a data-parallel trainer
    draws them for the global batch and passes this rank's rows).
    """
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.to(real).view(-1, 1, 1, 1)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    critic = D(x)[0]
    (grad,) = torch.autograd.grad(critic.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def age_target(aging_map_patch: torch.Tensor) -> torch.Tensor:
    """The (already blurred) aging-map patch downsampled to 10x10 by area averaging: D_Age's target."""
    return F.adaptive_avg_pool2d(aging_map_patch, AGE_GRID)


def age_loss(pred_map: torch.Tensor, aging_map_patch: torch.Tensor) -> torch.Tensor:
    """L_Age (Eq. 2): MSE between D's 10x10 map and the downsampled target map."""
    return F.mse_loss(pred_map, age_target(aging_map_patch))


def loc_loss(pred_xy: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """L_Loc (Eq. 3): MSE between D's (x, y) and the patch centre (faceage.amgan.maps.patch_location)."""
    return F.mse_loss(pred_xy, xy)


def _grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and between the vertical image gradients of ``a`` and ``b``."""

    def grads(x):
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (ax, ay), (bx, by) = grads(a), grads(b)
    return (ax - bx).abs().mean() + (ay - by).abs().mean()


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """L_Cyc substitute for the paper's perceptual loss: pixel L1 + gradient L1 at ``scales`` scales."""
    loss = (reconstructed - original).abs().mean()
    a, b = reconstructed, original
    for i in range(scales):
        if i:
            if min(a.shape[-2:]) < 4:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        loss = loss + _grad_l1(a, b)
    return loss


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The two colour-difference channels (B - Y, R - Y) of an RGB batch, Y the BT.601 luma."""
    y = luma(x)
    return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1)


def colour_shift_loss(edited: torch.Tensor, original: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """The evaluation's colour-cast measure (``train.eval.amgan``), not a training term: L1 between the
    chroma of the edit and of its input, both averaged over ``pool`` x ``pool`` blocks. It charges a tint spread
    over a region (the colour cast that a short
    run used to move D's aging-map estimate) and leaves luminance (wrinkles, shadows, greying hair's
    brightness) and fine colour texture free."""
    return (F.avg_pool2d(chroma(edited), pool) - F.avg_pool2d(chroma(original), pool)).abs().mean()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` (broadcast to ``x``'s shape) is 1, weighted by it; 0
    when the mask is empty. The per-sign terms' average over a zone, a band or the valid zones."""
    w = mask.expand_as(x)
    return (x * w).sum() / w.sum().clamp(min=1.0)


def zone_leak_loss(edited: torch.Tensor, base: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Ours, not the paper's: mean |edited - base| over the pixels where ``outside`` [N, 1, H, W] is 1.

    ``edited`` and ``base`` are G's outputs for two maps that differ in one sign's score only, and
    ``outside`` marks the pixels beyond that sign's zone and a blur margin around it: the loss is how
    much a per-sign edit leaks out of its zone. It asks nothing of the zone itself (D's map estimate
    does), so G can meet it only by keeping each sign's effect where the map puts it."""
    return masked_mean((edited - base).abs(), outside)


def edit_tone_loss(edited: torch.Tensor, base: torch.Tensor, zone: torch.Tensor, k: int = 7) -> torch.Tensor:
    """Ours, not the paper's: mean |low-pass(edited - base)| over the pixels of ``zone`` [N, 1, H, W].

    ``edited`` and ``base`` as in :func:`zone_leak_loss`, ``zone`` the edited sign's zone. The low pass is a
    ``k`` x ``k`` box mean of all three channels, so the term charges a change of the zone's tone and
    colour (a blotch) and leaves its fine texture (a wrinkle, thinner than ``k``) nearly free. The weak
    labels divide ridge energy by the zone's luminance, so a texture target alone can be met by darkening
    the zone; this term closes that path."""
    low = F.avg_pool2d(edited - base, k, stride=1, padding=k // 2, count_include_pad=False)
    return masked_mean(low.abs(), zone)


def shift_consistency_loss(a: torch.Tensor, b: torch.Tensor, offset: torch.Tensor, margin: int) -> torch.Tensor:
    """Ours, not the paper's: mean |a - b| where two overlapping patches' outputs show the same pixels.

    ``a`` and ``b`` [N, C, P, P] are G's outputs on two crops of one face (same image, map and location
    maps) whose top-left corners differ by ``offset`` [N, 2] (b's corner minus a's, rows then columns);
    pixels within ``margin`` of either crop's border are left out (padding changes them). A fully
    convolutional G should give the same pixel whichever crop it sits in (the premise of Sec. 3.6: train on
    patches, infer on the whole image). With strided convolutions and zero padding it need not: without
    this term a CPU-trained G drew horizontal lines on the rows 1-8 of every 16 counted from the crop's top
    (``train.eval.amgan.crop_consistency`` measures it). 0 where no pixel overlaps."""
    n, ch, P = a.shape[0], a.shape[1], a.shape[-1]
    i = torch.arange(P, device=a.device)
    dy, dx = offset.to(a.device).long().unbind(1)
    r, c = i[None, :, None] - dy[:, None, None], i[None, None, :] - dx[:, None, None]  # b's pixel of a's (i, j)
    inner = _inside(i, margin, P)
    valid = inner[None, :, None] & inner[None, None, :] & _inside(r, margin, P) & _inside(c, margin, P)
    at = (r.clamp(0, P - 1) * P + c.clamp(0, P - 1)).flatten(1)  # [n, P*P]
    b_at_a = b.flatten(2).gather(2, at[:, None].expand(n, ch, -1)).view_as(a)
    w = valid[:, None].to(a.dtype)
    return ((a - b_at_a).abs() * w).sum() / (w.sum() * ch).clamp(min=1)


def _inside(idx: torch.Tensor, margin: int, P: int) -> torch.Tensor:
    """Where pixel indices ``idx`` of a side-``P`` patch lie ``margin`` or more from its borders."""
    return (idx >= margin) & (idx < P - margin)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of absolute horizontal and vertical neighbour differences per image, batch mean."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    return (dx + dy).mean()


def attention_loss(attention: torch.Tensor, lambda_mask: float = 0.1, lambda_tv: float = 1e-5) -> torch.Tensor:
    """GANimation's attention regulariser: lambda_mask * mean(A) + lambda_tv * TV(A) (our choice)."""
    return lambda_mask * attention.mean() + lambda_tv * total_variation(attention)


def make_optimizers(G: nn.Module, D: nn.Module, t: AMGANTrainDefaults | None = None):
    """Adam for G and D with the learning rates and betas of ``t`` (default: the paper's, Sec. 3.5)."""
    t = t or AMGANTrainDefaults()
    return (
        torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=t.betas),
        torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=t.betas),
    )
