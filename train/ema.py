"""The exponential moving average of a generator, shared by the CUSP and AMGAN trainers.

The EMA copy is what ships (CUSP Sec. 4; AMGAN Sec. 3.6); its decay per step is set by a half-life in
images, so it does not depend on the batch size (StyleGAN2's convention): beta = 0.5 ** (batch / half_life).
"""

from __future__ import annotations

import copy

import torch


def requires_grad(module: torch.nn.Module, flag: bool) -> None:
    """Switch gradients of every parameter of ``module`` on or off (a GAN step trains one side only)."""
    for p in module.parameters():
        p.requires_grad_(flag)


def make_ema(net: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``net`` in eval mode, to be updated with :func:`ema_update`."""
    ema = copy.deepcopy(net).eval()
    requires_grad(ema, False)
    return ema


def ema_decay(batch: int, half_life_images: float) -> float:
    """The per-step decay beta whose weight halves after ``half_life_images`` images of ``batch`` a step."""
    return 0.5 ** (batch / max(half_life_images, 1e-8))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net for the parameters; buffers are copied."""
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)
