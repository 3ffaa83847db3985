"""CUSP networks: E_s, E_c, E_a, the generator G and the discriminator D, in one file.

Gomez-Trenado et al., "Custom Structure Preservation in Face Aging", ECCV 2022, Sec. 3.1 (Fig. 2).
Written from the paper; where the authors' released code differs, the choice is named below.

Data flow (Sec. 3.1):
    s   = E_s(X)                       style vector, global-average-pooled (no spatial information)
    c, F_c = E_c(X)                    content tensor (bottleneck) and the skip feature at 1/4 resolution
    a~  = E_a(a_t)                     8-layer MLP embedding of the target age
    X^  = G(c, s, a~, F~_c)            style-based decoder; F~_c is F_c blurred by the CUSP module (Eq. 2)

Choices, where the paper and the released code differ (each one follows the paper):
  * each decoder block = a sub-block modulated by the style s, then a sub-block modulated by the age
    embedding a~; tRGB is modulated by a~ (the release swaps these: age->conv0, style->conv1/tRGB);
  * E_s is global-average-pooled straight into s (the release adds an 8-layer style MLP, not in the paper);
  * E_a takes a *soft one-hot* of the age over 0..100 (linear interpolation between the two nearest
    integer ages), so the target age is continuous; for integer ages it is the release's one-hot;
  * the skip feature enters only the second-to-last block ("a single skip connection before the last
    block"); D is the StyleGAN2 residual discriminator with a projection head over the 10 age groups.
Up-sampling is bilinear on the input of the first sub-block ("Up-sampling is applied to the input of the
first sub-block"), then a 3x3 modulated convolution, instead of StyleGAN2's transposed conv + FIR filter.
Noise is random in training and a fixed buffer (``noise="const"``) at inference, so edits are deterministic.
A trainer may also pass a function ``noise(n, h, w, device, dtype) -> [n, 1, h, w]`` (multi-process
training draws the global batch's noise on every rank and keeps its own rows; see ``train.distributed``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_AGE_GROUPS = 10  # D's age-group classes: len(faceage.data.ages.AGE_GROUPS) (tests/test_cusp.py checks)
MAX_AGE = 100  # E_a's input covers ages 0..MAX_AGE (soft one-hot of MAX_AGE + 1 bins)
SQRT2 = math.sqrt(2.0)


@dataclass
class CUSPConfig:
    """Hyper-parameters of the CUSP networks (saved as a plain dict in every checkpoint)."""

    resolution: int = 128  # side of the aligned face crop, pixels
    n_down: int = 5  # stride-2 layers in each encoder; bottleneck side = resolution / 2**n_down
    enc_base: int = 32  # encoder width at the first layer, doubled per layer up to enc_max
    enc_max: int = 256
    channel_base: int = 4096  # decoder/discriminator width at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 128
    age_dim: int = 128  # width of E_a (the age embedding a~)
    mlp_layers: int = 8  # E_a depth (paper: 8)
    mlp_lr_mul: float = 0.01  # learning-rate multiplier of E_a (StyleGAN2 mapping network)

    def __post_init__(self):
        if self.resolution % (2**self.n_down) or self.resolution // 2**self.n_down < 2:
            raise ValueError(f"resolution {self.resolution} must be divisible by 2**n_down={2**self.n_down}")
        if self.n_down < 3:
            raise ValueError("n_down must be >= 3 (the skip feature sits at 1/4 resolution)")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def style_dim(self) -> int:
        """Width of the style vector s = width of E_s's last layer."""
        return self.enc_channels[-1]

    @property
    def enc_channels(self) -> list[int]:
        """Output width of each encoder layer (layer i works at resolution / 2**(i+1))."""
        return [min(self.enc_base * 2**i, self.enc_max) for i in range(self.n_down)]

    def channels(self, res: int) -> int:
        """Decoder/discriminator width at resolution ``res``."""
        return min(self.channel_base // res, self.channel_max)


# ----------------------------------------------------------------------------------------------
# Equalised-learning-rate primitives (StyleGAN2): weights ~ N(0, 1), scaled at run time by 1/sqrt(fan_in).


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate and optional lrelu (gain sqrt 2)."""

    def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activate=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x):
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(y, 0.2) * SQRT2 if self.activate else y


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate; ``down=True`` blurs then strides by 2 (anti-aliased)."""

    def __init__(self, in_ch, out_ch, kernel, down=False, bias=True, activate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.down, self.activate, self.pad = down, activate, kernel // 2

    def forward(self, x):
        if self.down:
            x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # [1,2,1] low-pass
        y = F.conv2d(x, self.weight * self.scale, self.bias, stride=2 if self.down else 1, padding=self.pad)
        return F.leaky_relu(y, 0.2) * SQRT2 if self.activate else y


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution with weight demodulation [Karras et al. 2020, Eq. 1-3].

    Implemented as x * style -> conv -> * demod, which equals the per-sample weight form and lets one
    batched convolution serve the whole batch.
    """

    def __init__(self, in_ch, out_ch, kernel, w_dim, demodulate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # w -> per-input-channel scale
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.pad = demodulate, kernel // 2

    def forward(self, x, w):
        style = self.affine(w)  # [N, in]
        weight = self.weight * self.scale
        y = F.conv2d(x * style[:, :, None, None], weight, padding=self.pad)
        if self.demodulate:
            # d_j = 1 / sqrt(sum_{i,k} (w_ijk * s_i)^2 + eps)            [N, out]
            d = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)
            y = y * d[:, :, None, None]
        return y


class StyledSubBlock(nn.Module):
    """Modulated 3x3 conv + noise (learned strength) + bias + lrelu: one sub-block of Sec. 3.1."""

    def __init__(self, in_ch, out_ch, w_dim, res, up=False):
        super().__init__()
        self.up = up
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(1, 1, res, res, generator=torch.Generator().manual_seed(res)))

    def forward(self, x, w, noise: str = "random"):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.conv(x, w)
        if noise == "random":
            y = y + self.noise_strength * torch.randn(
                y.shape[0], 1, y.shape[2], y.shape[3], device=y.device, dtype=y.dtype
            )
        elif callable(noise):
            y = y + self.noise_strength * noise(y.shape[0], y.shape[2], y.shape[3], y.device, y.dtype)
        elif noise == "const":
            y = y + self.noise_strength * self.noise_const.to(y.dtype)
        return F.leaky_relu(y + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    """tRGB: 1x1 modulated conv without demodulation, conditioned on the age embedding (Sec. 3.1)."""

    def __init__(self, in_ch, w_dim):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x, a_emb):
        return self.conv(x, a_emb) + self.bias[None, :, None, None]


# ----------------------------------------------------------------------------------------------
# The five networks of Fig. 2.


class Encoder(nn.Module):
    """A stack of ``n_down`` anti-aliased stride-2 3x3 convs; returns the feature at every scale.

    Used twice: as the content encoder E_c (keeps the spatial maps) and the style encoder E_s
    (global-average-pooled, Sec. 3.1 "(1)").
    """

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        chans = [3] + cfg.enc_channels
        self.layers = nn.ModuleList(EqualConv2d(chans[i], chans[i + 1], 3, down=True) for i in range(cfg.n_down))

    def forward(self, x) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)  # feats[i]: [N, enc_channels[i], R / 2**(i+1), R / 2**(i+1)]
        return feats


class StyleEncoder(nn.Module):
    """E_s: the encoder followed by global average pooling -> style vector s [N, style_dim]."""

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        self.encoder = Encoder(cfg)

    def forward(self, x):
        return self.encoder(x)[-1].mean(dim=(2, 3))


class ContentEncoder(nn.Module):
    """E_c: returns the bottleneck c and the skip feature F_c at 1/4 resolution (Sec. 3.1 "(2)")."""

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        self.encoder = Encoder(cfg)

    def forward(self, x):
        feats = self.encoder(x)
        return feats[-1], feats[1]  # c: [N, C, R/2**n_down, ...], F_c: [N, enc_channels[1], R/4, R/4]


def age_soft_onehot(age: torch.Tensor) -> torch.Tensor:
    """Soft one-hot [N, MAX_AGE+1] of continuous ages: linear interpolation between neighbouring years."""
    age = age.clamp(0, MAX_AGE).to(torch.float32)
    lo = age.floor().long().clamp(max=MAX_AGE - 1)
    frac = (age - lo.to(age.dtype)).unsqueeze(1)
    out = torch.zeros(age.shape[0], MAX_AGE + 1, device=age.device)
    out.scatter_(1, lo.unsqueeze(1), 1.0 - frac)
    out.scatter_add_(1, (lo + 1).unsqueeze(1), frac)
    return out


class AgeMLP(nn.Module):
    """E_a: 8-layer MLP embedding of the target age, a~_t = E_a(a_t) (Sec. 3.1 "(3)").

    Input: the soft one-hot of the age, normalised by its second moment (as StyleGAN2's mapping network).
    """

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        dims = [MAX_AGE + 1] + [cfg.age_dim] * cfg.mlp_layers
        self.layers = nn.Sequential(
            *(EqualLinear(dims[i], dims[i + 1], lr_mul=cfg.mlp_lr_mul, activate=True) for i in range(cfg.mlp_layers))
        )

    def forward(self, age: torch.Tensor) -> torch.Tensor:
        x = age_soft_onehot(age).to(self.layers[0].weight.dtype)
        x = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.layers(x)


class DecoderBlock(nn.Module):
    """One generator block: style sub-block (with up-sampling), age sub-block, tRGB (Sec. 3.1)."""

    def __init__(self, in_ch, out_ch, style_dim, age_dim, out_res):
        super().__init__()
        self.conv_s = StyledSubBlock(in_ch, out_ch, style_dim, out_res, up=True)  # modulated by s
        self.conv_a = StyledSubBlock(out_ch, out_ch, age_dim, out_res)  # modulated by a~
        self.to_rgb = ToRGB(out_ch, age_dim)

    def forward(self, x, s, a_emb, noise):
        x = self.conv_a(self.conv_s(x, s, noise), a_emb, noise)
        return x, self.to_rgb(x, a_emb)


class Generator(nn.Module):
    """G: StyleGAN2-style decoder with input-skip tRGB outputs and one skip connection (Sec. 3.1 "(4)").

    Block i maps resolution R/2**(n_down-i) to twice that; the blurred skip feature F~_c is concatenated
    to the input of the second-to-last block. Output: sum of the up-sampled tRGB images (no tanh).
    """

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        self.cfg = cfg
        r0 = cfg.resolution // 2**cfg.n_down
        skip_ch = cfg.enc_channels[1]
        in_ch = cfg.enc_channels[-1]
        blocks = []
        for i in range(cfg.n_down):
            out_res = r0 * 2 ** (i + 1)
            extra = skip_ch if i == cfg.n_down - 2 else 0
            blocks.append(DecoderBlock(in_ch + extra, cfg.channels(out_res), cfg.style_dim, cfg.age_dim, out_res))
            in_ch = cfg.channels(out_res)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, c, s, a_emb, skip, noise: str = "random"):
        x, img = c, None
        for i, block in enumerate(self.blocks):
            if i == len(self.blocks) - 2:
                x = torch.cat([x, skip], dim=1)  # the single skip connection (F~_c, Eq. 2)
            x, rgb = block(x, s, a_emb, noise)
            img = rgb if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + rgb
        return img


class CUSPGenerator(nn.Module):
    """The whole aging network T = (E_s, E_c, E_a, G); the skip blur is passed in by the caller.

    ``forward(x, age, blur_skip)`` where ``blur_skip(F_c) -> F~_c`` applies Eq. 2 (see
    ``faceage.cusp.mask``); ``None`` keeps the skip unblurred (sigma_m = sigma_g = 0).
    """

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        self.cfg = cfg
        self.E_s = StyleEncoder(cfg)
        self.E_c = ContentEncoder(cfg)
        self.E_a = AgeMLP(cfg)
        self.G = Generator(cfg)

    def encode(self, x):
        """Per-photo work, cacheable across slider moves: (c, F_c, s)."""
        c, f_c = self.E_c(x)
        return c, f_c, self.E_s(x)

    def decode(self, c, f_c_blurred, s, age, noise: str = "const"):
        """Per-edit work: E_a and G."""
        return self.G(c, s, self.E_a(age), f_c_blurred, noise)

    def forward(self, x, age, blur_skip=None, noise: str = "random"):
        c, f_c, s = self.encode(x)
        skip = blur_skip(f_c) if blur_skip is not None else f_c
        return self.decode(c, skip, s, age, noise)


class DiscriminatorBlock(nn.Module):
    """StyleGAN2 residual D block: two 3x3 convs (second one down-sampling) + 1x1 down-sampled shortcut."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, down=True, bias=False, activate=False)

    def forward(self, x):
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


class Discriminator(nn.Module):
    """D: StyleGAN2 residual discriminator with a projection head over the 10 age groups (Sec. 3.3).

    D(x, g) = <phi(x), w> + b + <phi(x), embed(g)> / sqrt(dim)  (projection discriminator, Miyato 2018).
    """

    def __init__(self, cfg: CUSPConfig):
        super().__init__()
        res = cfg.resolution
        self.from_rgb = EqualConv2d(3, cfg.channels(res), 1)
        blocks = []
        while res > 4:
            blocks.append(DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        ch = cfg.channels(res)
        self.conv = EqualConv2d(ch, ch, 3)
        self.fc = EqualLinear(ch * res * res, ch, activate=True)
        self.out = EqualLinear(ch, 1)
        self.embed = nn.Embedding(NUM_AGE_GROUPS, ch)
        nn.init.normal_(self.embed.weight, std=1.0)

    def forward(self, x, group: torch.Tensor):
        h = self.fc(self.conv(self.blocks(self.from_rgb(x))).flatten(1))  # [N, ch]
        proj = (h * self.embed(group)).sum(dim=1, keepdim=True) / math.sqrt(h.shape[1])
        return (self.out(h) + proj).squeeze(1)
