"""Photo-like augmentations: make an aligned UTKFace crop look like a face cut from a user's photo.

The editor meets faces that UTKFace never shows it (``shared/design/real-photos.md``): aligned a little
off, lit and white-balanced otherwise, grey or tinted, soft, noisy, JPEG-compressed. Each training image
is, with probability ``p``, passed through a camera-and-upload chain whose every stage has its own chance:

    geometry (rotation, scale, shift; the CUSP mask is warped with it) -> exposure, contrast, gamma,
    white balance, saturation -> grey -> blur -> sensor noise -> JPEG (8x8 DCT quantisation)

All on the device, batched, no host sync. The draws depend only on ``(seed, step)``, so a resumed run
sees the same augmented batches. The JPEG stage is JPEG's lossy part (YCbCr, 4:2:0 chroma, the standard
quantisation tables scaled by quality as libjpeg does); the entropy coding it leaves out is lossless.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from faceage.filters import luma

# stage: (chance, low, high) of its parameter(s); the chances apply to an image already picked by ``p``
ROTATE_DEG = (0.6, -8.0, 8.0)
SCALE = (0.6, 0.92, 1.08)
SHIFT = (0.6, -0.03, 0.03)  # fraction of the side
EXPOSURE = (0.5, -0.15, 0.15)  # added, in [-1, 1] units
CONTRAST = (0.5, 0.75, 1.25)
GAMMA = (0.4, 0.8, 1.25)
WHITE_BALANCE = (0.4, 0.9, 1.1)  # per-channel gain
SATURATION = (0.4, 0.6, 1.3)
GREY = (0.12, 0.0, 0.0)
BLUR_SIGMA = (0.3, 0.3, 1.6)  # pixels of the training crop
NOISE_STD = (0.3, 0.005, 0.05)  # in [-1, 1] units (0.3-3 grey levels std)
JPEG_QUALITY = (0.4, 25.0, 90.0)

LUMA_TABLE = (  # JPEG standard, Annex K.1
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4


class Draws:
    """Per-image parameters of one batch, drawn on the CPU from ``(seed, step)`` and sent to ``device``."""

    def __init__(self, n: int, p: float, seed: int, step: int, device: torch.device):
        self.g = torch.Generator().manual_seed(seed * 1_000_033 + step + 17)
        self.picked = torch.rand(n, generator=self.g) < p
        self.n, self.device = n, device

    def device_generator(self) -> torch.Generator:
        """A generator on the device, seeded from this batch's draws (for the pixel noise)."""
        seed = int(torch.randint(2**62, (1,), generator=self.g))
        return torch.Generator(device=self.device).manual_seed(seed)

    def __call__(self, stage: tuple[float, float, float], k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(on [n] bool, value [n, k]) of a stage; ``on`` is False where the image was not picked."""
        chance, lo, hi = stage
        on = self.picked & (torch.rand(self.n, generator=self.g) < chance)
        value = lo + (hi - lo) * torch.rand(self.n, k, generator=self.g)
        return on.to(self.device, non_blocking=True), value.to(self.device, non_blocking=True)


def photo_augment(
    x: torch.Tensor, M: torch.Tensor | None, p: float, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment images ``x`` [n,3,S,S] in [-1, 1] (and warp masks ``M`` [n,1,S,S] with them); ``p`` = 0 returns
    the inputs unchanged."""
    if p <= 0:
        return x, M
    d = Draws(len(x), p, seed, step, x.device)
    grid = _affine_grid(d, x)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if M is not None:
        M = F.grid_sample(M, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = _tone(d, x)
    on, _ = d(GREY)
    x = torch.where(on[:, None, None, None], luma(x).expand_as(x), x)
    on, sigma = d(BLUR_SIGMA)
    x = torch.where(on[:, None, None, None], _blur_each(x, sigma[:, 0]), x)
    on, std = d(NOISE_STD)
    noise = torch.randn(x.shape, generator=d.device_generator(), device=x.device)
    x = x + noise * (std[:, 0] * on)[:, None, None, None]
    on, quality = d(JPEG_QUALITY)
    x = torch.where(on[:, None, None, None], jpeg(x.clamp(-1, 1), quality[:, 0]), x)
    return x.clamp(-1, 1), M


def _affine_grid(d: Draws, x: torch.Tensor) -> torch.Tensor:
    on_r, deg = d(ROTATE_DEG)
    on_s, scale = d(SCALE)
    on_t, shift = d(SHIFT, 2)
    a = torch.deg2rad(deg[:, 0]) * on_r
    s = torch.where(on_s, 1.0 / scale[:, 0], torch.ones_like(a))
    t = shift * 2 * on_t[:, None]
    theta = torch.stack(
        [torch.stack([s * a.cos(), -s * a.sin(), t[:, 0]], 1), torch.stack([s * a.sin(), s * a.cos(), t[:, 1]], 1)], 1
    )
    return F.affine_grid(theta, list(x.shape), align_corners=False)


def _tone(d: Draws, x: torch.Tensor) -> torch.Tensor:
    def where(stage, k=1):
        on, v = d(stage, k)
        return on[:, None, None, None], v.view(len(x), k, 1, 1)

    on, v = where(EXPOSURE)
    x = torch.where(on, x + v, x)
    on, v = where(CONTRAST)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = torch.where(on, (x - mean) * v + mean, x)
    on, v = where(GAMMA)
    x = torch.where(on, ((x.clamp(-1, 1) + 1) / 2) ** v * 2 - 1, x)
    on, v = where(WHITE_BALANCE, 3)
    x = torch.where(on, (x + 1) * v - 1, x)
    on, v = where(SATURATION)
    y = luma(x)
    return torch.where(on, y + (x - y) * v, x)


def _blur_each(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian of its own ``sigma`` [n] per image, as one grouped convolution."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(BLUR_SIGMA[2])))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [n*c, K]
    y = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    return F.conv2d(y, k[:, None, :, None], groups=n * c).view(n, c, h, w)


def _dct_matrix(device, dtype) -> torch.Tensor:
    k = torch.arange(8, device=device, dtype=dtype)
    D = torch.cos((2 * k[None] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    D[0] /= math.sqrt(2)
    return D


def _quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables: [n, 8, 8] luma and chroma steps."""
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]
    tables = []
    for base in (LUMA_TABLE, CHROMA_TABLE):
        t = torch.tensor(base, device=q.device, dtype=q.dtype)
        tables.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return tables[0], tables[1]


def _quantise(plane: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """8x8 DCT, rounding to ``steps`` [n, 8, 8], inverse DCT of planes [n, H, W] (level-shifted 0-255)."""
    n, h, w = plane.shape
    D = _dct_matrix(plane.device, plane.dtype)
    blocks = plane.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = D @ blocks @ D.T
    s = steps[:, None, None]
    coef = torch.round(coef / s) * s
    return (D.T @ coef @ D).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy round trip of images ``x`` [n,3,S,S] in [-1, 1] (S a multiple of 16) at ``quality`` [n]."""
    n, _, h, w = x.shape
    rgb = (x + 1) * 127.5
    r, g, b = rgb.unbind(1)
    y = luma(rgb)[:, 0]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    q_luma, q_chroma = _quant_tables(quality.to(x.dtype))
    y = _quantise(y - 128, q_luma) + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    chroma = torch.stack([_quantise(chroma[:, i], q_chroma) for i in range(2)], 1)
    cb, cr = F.interpolate(chroma, size=(h, w), mode="bilinear", align_corners=False).unbind(1)
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (out.round().clamp(0, 255) / 127.5 - 1).to(x.dtype)
