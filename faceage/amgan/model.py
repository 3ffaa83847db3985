"""AgingMapGAN networks: the SPADE generator G with attention, the three-headed discriminator D, in one file.

Despois, Flament, Perrot, "AgingMapGAN (AMGAN)", ECCV 2020 workshops, Sec. 3.2-3.6 (Fig. 3, Fig. 4).
Written from the paper and the building blocks it cites (StarGAN, SPADE, GANimation). The aging maps
are built in :mod:`faceage.amgan.maps`; the losses (Eq. 1-4) are in :mod:`train.amgan.losses`.

Data flow (Sec. 3.2, Fig. 3):
    cond     = concat(A_p, X_p, Y_p)                       aging map patch + location map patches
    h        = Enc(I_p)                                    fully convolutional, stride 2**n_down
    h        = SPADE-ResBlocks(h | cond)                   at the bottleneck and after every x2 upsampling
    C, A     = tanh(conv7(h)), sigmoid(conv7(h))           colour and attention heads (GANimation)
    out      = A * I_p + (1 - A) * C                       A = 1 keeps the input pixel
D(i) -> critic map (WGAN, Eq. 1), (x, y) of the patch centre (Eq. 3), a 10x10 aging map (Eq. 2).

Choices where the paper is silent (each one is ours):
  * **Normalisation: positional normalisation** (per pixel, across channels, no parameters; Li et al.,
    "Positional Normalization", NeurIPS 2019) in the encoder and as SPADE's parameter-free norm,
    instead of instance norm. The paper trains on patches and infers on the full image (Sec. 3.6);
    instance-norm statistics depend on the whole patch, so a patch and the same region of the full
    image are normalised differently and the full-image output drifts from what was trained.
    Positional norm is pointwise, so G is *translation-equivariant*: away from the borders (by the
    receptive field) the full-image output cropped equals the patch output, and tiled inference
    equals one pass.
  * The conditions enter G only through SPADE (the project page: "via the SPADE block"); the image
    alone is G's input. Up-sampling is nearest x2 followed by the SPADE block's 3x3 convs.
  * Encoder widths double per stride-2 layer from ``g_base`` up to ``g_max``; the decoder mirrors
    them. SPADE's hidden width is ``spade_hidden`` (the SPADE paper uses 128).
  * ``tie_map_channels``: SPADE's first conv reads every aging-map channel through one shared kernel
    (:class:`TiedMapConv`).
  * D: StarGAN's PatchGAN trunk (4x4 stride-2 convs, LeakyReLU 0.01). The critic head is a 3x3 conv
    to a 1-channel map (its mean is D(i)); the location head is global average pooling, then a
    linear layer to (x, y); the aging-map head is a 3x3 conv to ``map_channels`` channels resized to
    10x10 by adaptive average pooling (which repeats cells when the trunk output is smaller than
    10x10, e.g. 4x4 for a 64-px patch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

AGE_GRID = 10  # side of D's low-resolution aging-map estimate (Sec. 3.3)

RETIRED_NET_OPTIONS = {"norm": "positional", "d_map_layer": 0, "context": 0, "residual_colour": False}
"""Removed network options at the value that means the network defined here: older manifests hold them
(the ``retired`` of :func:`faceage.config.from_dict`)."""


@dataclass
class AMGANConfig:
    """Hyper-parameters of the AMGAN networks (saved as a plain dict with every checkpoint)."""

    map_channels: int = 2  # aging-map channels (faceage.amgan.maps.MAP_CHANNELS)
    g_base: int = 32  # generator width at full resolution
    g_max: int = 256
    n_down: int = 3  # stride-2 layers of the encoder; inputs must be multiples of 2**n_down
    n_bottleneck: int = 2  # SPADE residual blocks at the bottleneck
    spade_hidden: int = 64  # width of SPADE's shared conv
    d_base: int = 32
    d_max: int = 512
    d_layers: int = 5  # stride-2 layers of D
    # ours, on in the shipped weights: SPADE's first conv reads every aging-map channel with one shared
    # kernel plus a per-channel residual that starts at zero (TiedMapConv). False: one free kernel per
    # channel, as SPADE has (kept for the paper-setting GPU run of issue #32)
    tie_map_channels: bool = False

    def __post_init__(self):
        if self.n_down < 1 or self.d_layers < 1 or self.map_channels < 1:
            raise ValueError("n_down, d_layers and map_channels must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def cond_channels(self) -> int:
        """SPADE condition width: aging map + X + Y."""
        return self.map_channels + 2

    @property
    def g_channels(self) -> list[int]:
        """Generator width at scale 1/2**i, i = 0..n_down."""
        return [min(self.g_base * 2**i, self.g_max) for i in range(self.n_down + 1)]


def location_maps(height: int, width: int) -> torch.Tensor:
    """X and Y ramps over the full image, ``[2, height, width]`` float32, from -1 to +1 (Sec. 3.4).

    Channel 0 (X) grows left to right, channel 1 (Y) top to bottom; the first and last pixel
    centres are exactly -1 and +1. A 1-pixel side gets 0.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not hasattr(v, "__index__") or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    height, width = int(height), int(width)

    def ramp(n):
        return torch.zeros(1) if n == 1 else torch.linspace(-1.0, 1.0, n)

    ys, xs = ramp(height), ramp(width)
    return torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)]).contiguous()


# ----------------------------------------------------------------------------------------------
# Normalisation and SPADE


def positional_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance across channels at every pixel (no parameters)."""
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


class TiedMapConv(nn.Conv2d):
    """SPADE's first 3x3 conv with the kernels of the first ``maps`` input channels (the aging-map
    channels) written as ``tied + weight[:, c]``: one kernel ``tied`` shared by every map channel plus a
    per-channel residual that starts at zero (the location channels keep free kernels).

    Ours (``AMGANConfig.tie_map_channels``). The lip-corner signs live in map channel 1
    (:data:`faceage.amgan.maps.SIGN_CHANNEL`), every other sign in channel 0, and both channels hold the
    age everywhere else. With free kernels, only the two lip-corner edits ever train what channel 1's
    values mean, and a G trained so ignored it: raising a lip corner in channel 1 moved its zone's texture
    measure by 0.03, and the same raise written into channel 0 by 0.41, as much as any other sign (16 test
    faces). With the tied kernel, what every sign teaches about a map value applies to both channels from
    the start; the residuals learn what differs.

    Weights of an untied G (no ``tied`` entry) load with their map kernels averaged into ``tied`` and
    zero residuals: where every map channel holds the same value (the face outside the sign zones) G
    computes what it did; inside a zone, each channel's value counts through the shared kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, maps: int):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.maps = maps
        self.tied = nn.Parameter(self.weight.detach()[:, :1].clone())
        with torch.no_grad():
            self.weight[:, :maps].zero_()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        w = state_dict.get(prefix + "weight")
        if prefix + "tied" not in state_dict and w is not None and w.shape == self.weight.shape:
            state_dict[prefix + "tied"] = w[:, : self.maps].mean(1, keepdim=True)
            state_dict[prefix + "weight"] = torch.cat([torch.zeros_like(w[:, : self.maps]), w[:, self.maps :]], 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = F.pad(self.tied.expand(-1, self.maps, -1, -1), (0, 0, 0, 0, 0, self.in_channels - self.maps))
        return self._conv_forward(x, self.weight + shared, self.bias)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation [Park et al. 2019]: norm(x) * (1 + gamma(m)) + beta(m).

    The condition m is nearest-resized to the feature size, then a shared 3x3 conv + ReLU to
    ``hidden`` channels, then two 3x3 convs to gamma and beta; norm is :func:`positional_norm`.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int, tied_maps: int = 0):
        super().__init__()
        first = (
            TiedMapConv(cond_channels, hidden, tied_maps)
            if tied_maps
            else nn.Conv2d(cond_channels, hidden, 3, padding=1)
        )
        self.shared = nn.Sequential(first, nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        h = self.shared(cond)
        return positional_norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """(SPADE -> lrelu 0.2 -> conv3x3) twice, plus a shortcut (SPADE -> 1x1 conv when widths differ)."""

    def __init__(self, in_ch: int, out_ch: int, cfg: AMGANConfig):
        super().__init__()
        mid = min(in_ch, out_ch)
        c, h = cfg.cond_channels, cfg.spade_hidden
        t = cfg.map_channels if cfg.tie_map_channels else 0
        self.norm0, self.conv0 = SPADE(in_ch, c, h, t), nn.Conv2d(in_ch, mid, 3, padding=1)
        self.norm1, self.conv1 = SPADE(mid, c, h, t), nn.Conv2d(mid, out_ch, 3, padding=1)
        self.learned_shortcut = in_ch != out_ch
        if self.learned_shortcut:
            self.norm_s, self.conv_s = SPADE(in_ch, c, h, t), nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv0(F.leaky_relu(self.norm0(x, cond), 0.2))
        dx = self.conv1(F.leaky_relu(self.norm1(dx, cond), 0.2))
        return skip + dx


class _NormAct(nn.Module):
    def forward(self, x):
        return F.relu(positional_norm(x))


# ----------------------------------------------------------------------------------------------
# Generator


class AMGANGenerator(nn.Module):
    """G(image, aging_map, x_map, y_map) -> (output, A, C); fully convolutional (Sec. 3.2, Fig. 3).

    ``image`` [N, 3, H, W] in [-1, 1]; ``aging_map`` [N, map_channels, H, W] in [0, 1]; ``x_map``
    and ``y_map`` [N, 1, H, W] (or [N, H, W]) patches of :func:`location_maps`.
    H and W must be multiples of 2**n_down.
    """

    def __init__(self, cfg: AMGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AMGANConfig()
        ch = cfg.g_channels
        enc = [nn.Conv2d(3, ch[0], 7, padding=3), _NormAct()]
        for i in range(cfg.n_down):
            enc += [nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1), _NormAct()]
        self.encoder = nn.Sequential(*enc)
        self.bottleneck = nn.ModuleList(SPADEResBlock(ch[-1], ch[-1], cfg) for _ in range(cfg.n_bottleneck))
        self.up = nn.ModuleList(SPADEResBlock(ch[i + 1], ch[i], cfg) for i in reversed(range(cfg.n_down)))
        self.color_head = nn.Conv2d(ch[0], 3, 7, padding=3)
        self.attention_head = nn.Conv2d(ch[0], 1, 7, padding=3)

    def forward(self, image, aging_map, x_map, y_map):
        n, _, h, w = image.shape
        m = 2**self.cfg.n_down
        if h % m or w % m:
            raise ValueError(f"G needs sides that are multiples of {m}, got {h}x{w}")
        x_map = x_map.reshape(n, 1, h, w) if x_map.dim() == 3 else x_map
        y_map = y_map.reshape(n, 1, h, w) if y_map.dim() == 3 else y_map
        if aging_map.shape[1] != self.cfg.map_channels:
            raise ValueError(f"the aging map has {aging_map.shape[1]} channels, G expects {self.cfg.map_channels}")
        cond = torch.cat([aging_map, x_map, y_map], 1).to(image.dtype)
        feat = self.encoder(image)
        for block in self.bottleneck:
            feat = block(feat, cond)
        for block in self.up:
            feat = block(F.interpolate(feat, scale_factor=2, mode="nearest"), cond)
        feat = F.leaky_relu(feat, 0.2)
        color = torch.tanh(self.color_head(feat))
        attention = torch.sigmoid(self.attention_head(feat))
        out = attention * image + (1 - attention) * color
        return out, attention, color


# ----------------------------------------------------------------------------------------------
# Discriminator


class AMGANDiscriminator(nn.Module):
    """StarGAN-style PatchGAN with three heads: critic map, patch (x, y), 10x10 aging map (Fig. 4)."""

    def __init__(self, cfg: AMGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AMGANConfig()
        layers, c_in = [], 3
        for i in range(cfg.d_layers):
            c_out = min(cfg.d_base * 2**i, cfg.d_max)
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.critic = nn.Conv2d(c_in, 1, 3, padding=1)
        self.loc = nn.Linear(c_in, 2)
        self.age = nn.Conv2d(c_in, cfg.map_channels, 3, padding=1)

    def forward(self, image):
        """-> critic map [N, 1, h, w], (x, y) [N, 2], aging map [N, map_channels, 10, 10]."""
        h = self.trunk(image)
        critic = self.critic(h)
        loc = self.loc(h.mean((2, 3)))
        age = F.adaptive_avg_pool2d(self.age(h), AGE_GRID)
        return critic, loc, age


# ----------------------------------------------------------------------------------------------
# Inference on a whole image (Sec. 3.6)


def generate(G: AMGANGenerator, image: torch.Tensor, aging_map: torch.Tensor, loc: torch.Tensor | None = None):
    """G on a whole image in one pass: (output, A, C), each the size of ``image``.

    ``loc`` [N or 1, 2, H, W]: the location maps; default: the image's own (:func:`location_maps`). A crop
    of a larger image passes the matching window of that image's maps.
    """
    n, _, h, w = image.shape
    if loc is None:
        loc = location_maps(h, w).to(image)[None]
    loc = loc.expand(n, 2, h, w)
    return G(image, aging_map, loc[:, :1], loc[:, 1:])


# ----------------------------------------------------------------------------------------------
# Full-image inference by tiles


def _ramp(n: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weight of a tile of side ``n``; the inner ends fade over ``overlap`` pixels.

    Over an inner overlap, the first quarter has weight 0 (a tile's outer pixels are those spoiled
    by its zero padding), the middle half rises as a raised cosine, the last quarter is 1. The
    neighbouring tile has the mirror profile over the same pixels, so the two weights sum to 1.
    """
    w = torch.ones(n)
    if overlap > 0:
        q = overlap // 4
        t = (torch.arange(overlap, dtype=torch.float32) - q + 0.5) / max(overlap - 2 * q, 1)
        rise = 0.5 - 0.5 * torch.cos(math.pi * t.clamp(0.0, 1.0))
        rise[:q] = 0.0
        rise[overlap - q :] = 1.0
        if ramp_start:
            w[:overlap] = rise
        if ramp_end:
            w[n - overlap :] = rise.flip(0)
    return w


def _starts(total: int, tile: int, step: int) -> list[int]:
    if tile >= total:
        return [0]
    starts = list(range(0, total - tile, step)) + [total - tile]
    return sorted(set(starts))


@torch.no_grad()
def generate_tiled(
    G: AMGANGenerator,
    image: torch.Tensor,
    aging_map: torch.Tensor,
    tile: int = 256,
    overlap: int = 64,
    with_attention: bool = False,
):
    """G's output on a full image computed tile by tile, for images too large for memory.

    Returns the output [N, 3, H, W], or (output, attention mask A [N, 1, H, W]) with ``with_attention``
    (A is blended across tiles with the same weights).

    ``image`` [N, 3, H, W], ``aging_map`` [N, C, H, W] for the full image; the location maps are
    those of the full image (:func:`location_maps`), cropped with each tile. Tiles
    of side ``tile`` overlap by at least ``overlap`` pixels; over an overlap the outer quarter of
    each tile gets weight 0 and the middle half a raised-cosine cross-fade (weight 1 at the image
    borders). ``tile``, ``overlap`` and H, W must be multiples of 2**n_down so every tile sees the
    pixel grid of one pass. With positional norm G is translation-equivariant, so a tile pixel
    (up to float rounding). Smaller overlaps give a smooth, close approximation.
    """
    m = 2**G.cfg.n_down
    n, _, h, w = image.shape
    if tile % m or overlap % m or h % m or w % m or tile <= 0 or overlap < 0 or overlap * 2 > tile:
        raise ValueError(
            f"tile ({tile}), overlap ({overlap}) and the image sides ({h}x{w}) must be multiples of {m}, "
            "with 0 <= 2 * overlap <= tile"
        )
    loc = location_maps(h, w).to(image)[None].expand(n, 2, h, w)
    out = torch.zeros_like(image)
    att = torch.zeros(n, 1, h, w, dtype=image.dtype, device=image.device)
    weight = torch.zeros(1, 1, h, w, dtype=image.dtype, device=image.device)
    step = tile - overlap
    th, tw = min(tile, h), min(tile, w)
    for top in _starts(h, th, step):
        for left in _starts(w, tw, step):
            sl = (..., slice(top, top + th), slice(left, left + tw))
            y, a, _ = G(image[sl], aging_map[sl], loc[:, :1][sl], loc[:, 1:][sl])
            wy = _ramp(th, overlap if th < h else 0, top > 0, top + th < h)
            wx = _ramp(tw, overlap if tw < w else 0, left > 0, left + tw < w)
            win = (wy[:, None] * wx[None, :]).to(image)
            out[sl] += y * win
            att[sl] += a * win
            weight[sl] += win
    out, att = out / weight, att / weight
    return (out, att) if with_attention else out
