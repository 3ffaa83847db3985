"""Image filters in torch: the separable Gaussian blur shared by the CUSP mask (Eq. 1), the CUSP skip
blur (Eq. 2) and the AMGAN aging-map blur; and BT.601 luma (sign labels, AMGAN's colour term, the canvas).

``sigma == 0`` returns the input unchanged (an exact identity, not a Gaussian with sigma 1e-20 as the
released CUSP code does), and borders are reflect-padded so a blur never darkens the image edges
(the released code zero-pads, which darkens borders as sigma grows).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
"""BT.601 luma weights of R, G, B (they sum to 1)."""


def luma(x: torch.Tensor) -> torch.Tensor:
    """RGB [N, 3, H, W] -> luma [N, 1, H, W], in the range of ``x``."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def gaussian_kernel1d(sigma: float, truncate: float = 3.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps of standard deviation ``sigma`` (pixels), radius ceil(truncate*sigma)."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Blur every channel of ``x`` [N, C, H, W] with a Gaussian of std ``sigma`` pixels.

    Reflect padding where the image is large enough, replicate padding otherwise.
    """
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if sigma == 0.0:
        return x
    n, c, h, w = x.shape
    k = gaussian_kernel1d(sigma, truncate, dtype=x.dtype, device=x.device)
    r = k.numel() // 2
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x, (r, r, r, r), mode=mode)
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, k.numel())
    ky = k.view(1, 1, -1, 1).expand(c, 1, k.numel(), 1)
    y = F.conv2d(y, kx, groups=c)
    return F.conv2d(y, ky, groups=c)
