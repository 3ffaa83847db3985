"""The CUSP module (Gomez-Trenado et al., ECCV 2022, Sec. 3.2): the guided-backprop mask M (Eq. 1)
and the masked blur of the skip connection (Eq. 2).

Choices (the paper is followed and the released code's bugs are fixed; see shared/design/cusp.md §3):
  * GB target: the *sum of the pre-softmax age outputs* of C (class-independent), not the top-1 logit
    the release's FFHQ-RR command uses;
  * B is averaged over RGB *then* the absolute value is taken (paper order; the release swaps them);
  * the smoothing kernel is the release's evident intent, a 29-tap Gaussian at 224 px (sigma 4.7 px by
    OpenCV's rule), scaled with the resolution; the release's mis-ordered arguments give a 1731-tap
    kernel that saturates M to 1 everywhere;
  * normalisation divides by twice the *standard deviation* of B~ over locations (the paper says
    "variance" but writes sigma; std keeps M invariant to the gradient's scale, as the release does);
  * guided backprop is a flag of the classifier's forward call, so no copy of the model (EMA, snapshot)
    can silently lose it (the release's G_ema fell back to vanilla gradients);
  * Eq. 2 mixes two *independent* blurs of F_c (the release blurs sequentially, sigma_g then sigma_m);
  * sigma = 0 is an exact identity; borders are reflect-padded (the release zero-pads).

Units: sigma_m and sigma_g are given in the paper's units, pixels of a 224-px face crop (the paper's
range 0..9), whatever the model's resolution; they are converted to skip-feature pixels here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from faceage.errors import BadParameterError
from faceage.filters import gaussian_blur

PAPER_RESOLUTION = 224  # the sigmas are in pixels of a 224-px crop, as in the paper
SIGMA_MAX = 9.0  # the paper's slider range, 0..9; training samples within it
MASK_BLUR_SIGMA_224 = 0.3 * ((29 - 1) * 0.5 - 1) + 0.8  # 4.7 px: a 29-tap kernel at 224 px (OpenCV rule)

PRESETS = {  # (sigma_m, sigma_g) of the paper's Tables 2-3 and Fig. 6
    "high preservation": (1.8, 1.8),
    "custom preservation": (8.0, 4.5),
    "low preservation": (8.0, 8.0),
}


def guided_backprop(classifier, x: torch.Tensor) -> torch.Tensor:
    """B: gradient of the summed pre-softmax age outputs of C w.r.t. ``x`` [N,3,S,S], guided ReLUs.

    ``classifier(x, guided=True)`` must return pre-softmax logits; C's parameters get no gradient.
    """
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        logits = classifier(x, guided=True)
        (grad,) = torch.autograd.grad(logits.sum(), x)
    return grad


def mask_from_saliency(B: torch.Tensor) -> torch.Tensor:
    """Eq. 1: M = min(B~ / (2 std(B~)), 1), with B~ = blur(|mean_RGB(B)|); returns [N,1,S,S] in [0,1]."""
    b = B.mean(dim=1, keepdim=True).abs()
    b = gaussian_blur(b, MASK_BLUR_SIGMA_224 * B.shape[-1] / PAPER_RESOLUTION)
    std = b.flatten(1).std(dim=1).clamp_min(1e-12)[:, None, None, None]
    return torch.clamp(b / (2.0 * std), max=1.0)


def cusp_mask(classifier, x: torch.Tensor) -> torch.Tensor:
    """The mask M of Sec. 3.2 for images ``x`` [N,3,S,S] in [-1,1] (canonical aligned frame)."""
    return mask_from_saliency(guided_backprop(classifier, x))


def to_feature_sigma(sigma_paper: float, feature_side: int) -> float:
    """Convert a sigma in 224-px image pixels to pixels of a feature map of side ``feature_side``.

    The skip feature covers the whole crop, so one feature pixel spans 224 / feature_side paper pixels.
    """
    return float(sigma_paper) * feature_side / PAPER_RESOLUTION


def check_sigma(name: str, value: float) -> float:
    """Validate a user sigma: finite and >= 0 (values above SIGMA_MAX are allowed but untrained)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < 0:
        raise BadParameterError(f"{name} must be a number >= 0 (the paper uses 0..{SIGMA_MAX:g}), got {value!r}")
    return v


def blur_skip(F_c: torch.Tensor, M: torch.Tensor, sigma_m: float, sigma_g: float) -> torch.Tensor:
    """Eq. 2: F~_c = M~ o (F_c * k_m) + (1 - M~) o (F_c * k_g); sigmas in 224-px image pixels.

    ``M`` [N,1,S,S] is resized to the feature size by area averaging (M~). sigma 0 means no blur, so
    sigma_m = sigma_g = 0 returns ``F_c`` itself.
    """
    side = F_c.shape[-1]
    s_m, s_g = to_feature_sigma(sigma_m, side), to_feature_sigma(sigma_g, side)
    if s_m == 0.0 and s_g == 0.0:
        return F_c
    M_t = F.interpolate(M.to(F_c.dtype), size=F_c.shape[-2:], mode="area")
    blurred_g = gaussian_blur(F_c, s_g)
    blurred_m = blurred_g if s_m == s_g else gaussian_blur(F_c, s_m)
    return M_t * blurred_m + (1.0 - M_t) * blurred_g


def sample_sigmas(generator: torch.Generator, p_zero: float = 0.25) -> tuple[float, float]:
    """Training-time (sigma_m, sigma_g): each 0 with probability ``p_zero``, else U(0, SIGMA_MAX).

    Sec. 3.2: "sigma_m and sigma_g are sampled randomly to force G to perform well for any blur
    parameter"; the exact zeros make sure the no-blur (full preservation) setting is trained too.
    """
    u = torch.rand(4, generator=generator).tolist()
    return tuple(0.0 if u[i] < p_zero else u[i + 2] * SIGMA_MAX for i in range(2))
