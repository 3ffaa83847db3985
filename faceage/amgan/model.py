"""AgingMapGAN networks and losses: the SPADE generator G, the three-headed discriminator D, in one file.

Despois, Flament, Perrot, "AgingMapGAN (AMGAN)", ECCV 2020 workshops, Sec. 3.2-3.6 (Fig. 3, Fig. 4,
Eq. 1-4). Written from the paper; facts about it and the building blocks it cites (StarGAN, SPADE,
GANimation) are in ``shared/design/amgan.md``. The maps themselves are built in
:mod:`faceage.amgan.maps`.

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
    equals one pass. ``norm="instance"`` is available for comparison; it loses both properties.
  * The conditions enter G only through SPADE (the project page: "via the SPADE block"); the image
    alone is G's input. Up-sampling is nearest x2 followed by the SPADE block's 3x3 convs.
  * Encoder widths double per stride-2 layer from ``g_base`` up to ``g_max``; the decoder mirrors
    them. SPADE's hidden width is ``spade_hidden`` (the SPADE paper uses 128).
  * D: StarGAN's PatchGAN trunk (4x4 stride-2 convs, LeakyReLU 0.01). The critic head is a 3x3 conv
    to a 1-channel map (its mean is D(i)); the location head is global average pooling, then a
    linear layer to (x, y); the aging-map head is a 3x3 conv to ``map_channels`` channels resized to
    10x10 by adaptive average pooling (which repeats cells when the trunk output is smaller than
    10x10, e.g. 4x4 for a 64-px patch).
  * Cycle loss: the paper uses a perceptual loss (LPIPS-like); no pretrained perceptual network is
    available offline, so :func:`cycle_loss` is L1 on pixels plus L1 on image gradients at 3 scales
    (full, 1/2, 1/4), which weighs edges and wrinkle texture, not only colour.
  * Attention regularisers: GANimation's ``lambda_mask * mean(A) + lambda_tv * TV(A)`` with its
    defaults 0.1 and 1e-5 (TV = sum of absolute neighbour differences per image, batch mean).
    Without them A saturates to 1 and G changes nothing.
  * D_Age and D_Loc are trained on real patches (with their real maps and locations) and G is
    penalised with them on fakes, as StarGAN does with its class head.
  * Context margin (``AMGANConfig.context``, default 0 = the paper's plain pass): G may read each patch,
    and at inference the whole face, with a margin around it (:func:`pad_context`, :func:`generate`) and
    only the centre of its output is judged or shown, so what G draws at its own zero-padded borders
    stays out of the picture.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceage.amgan.maps import location_maps
from faceage.errors import BadParameterError
from faceage.filters import luma

AGE_GRID = 10  # side of D's low-resolution aging-map estimate (Sec. 3.3)


@dataclass
class AMGANConfig:
    """Hyper-parameters of the AMGAN networks (saved as a plain dict with every checkpoint)."""

    map_channels: int = 2  # aging-map channels (faceage.amgan.maps.MAP_CHANNELS)
    g_base: int = 32  # generator width at full resolution
    g_max: int = 256
    n_down: int = 3  # stride-2 layers of the encoder; inputs must be multiples of 2**n_down
    n_bottleneck: int = 2  # SPADE residual blocks at the bottleneck
    spade_hidden: int = 64  # width of SPADE's shared conv
    norm: str = "positional"  # "positional" (patch-consistent) or "instance"
    d_base: int = 32
    d_max: int = 512
    d_layers: int = 5  # stride-2 layers of D
    # ours: D_Age also reads the trunk after this many stride-2 layers (a local branch); 0: the last only
    d_map_layer: int = 0
    # ours: SPADE's first conv reads every aging-map channel with one shared kernel plus a per-channel
    # residual that starts at zero (TiedMapConv); False: one free kernel per channel, as SPADE has
    tie_map_channels: bool = False
    # ours: G runs on its input padded by this many pixels on every side (the image reflected, the aging
    # map's edge repeated, the location ramps extended: pad_context) and its output is cropped back
    # (generate); training crops the same margin around each patch and judges the centre only. G draws
    # marks at its own input's borders (zero padding): with no margin they land in the picture (on the
    # 128-px runs of the sixth to eighth sessions a line along the top of the forehead, and D read them
    # as age). Must make the padded side a multiple of 2**n_down. 0: the paper's plain pass
    context: int = 0
    # ours: the colour head predicts a change over the input, C = clamp(image + tanh(z), -1, 1), its last
    # conv zero-initialised so that C starts as the input and G as the identity whatever A is. The paper's
    # C (GANimation's) is a whole new image: on 2 CPU cores it was still a blurred face after 400 steps, so
    # A stayed near 1 and G changed nothing. False: the paper's C = tanh(z)
    residual_colour: bool = False

    def __post_init__(self):
        if self.norm not in ("positional", "instance"):
            raise ValueError(f"norm must be 'positional' or 'instance', got {self.norm!r}")
        if self.n_down < 1 or self.d_layers < 1 or self.map_channels < 1:
            raise ValueError("n_down, d_layers and map_channels must be >= 1")
        if not 0 <= self.d_map_layer < self.d_layers:
            raise ValueError(f"d_map_layer must be in [0, d_layers) = [0, {self.d_layers}), got {self.d_map_layer}")
        if self.context < 0 or (2 * self.context) % 2**self.n_down:
            raise ValueError(f"context must be >= 0 with 2 * context a multiple of 2**n_down = {2**self.n_down}, "
                             f"got {self.context}")

    @classmethod
    def from_dict(cls, d: dict) -> "AMGANConfig":
        """Build from a plain dict, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

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


# ----------------------------------------------------------------------------------------------
# Normalisation and SPADE


def positional_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance across channels at every pixel (no parameters)."""
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def param_free_norm(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "positional":
        return positional_norm(x)
    return F.instance_norm(x, eps=1e-5)


class TiedMapConv(nn.Conv2d):
    """SPADE's first 3x3 conv with the kernels of the first ``maps`` input channels (the aging-map
    channels) written as ``tied + weight[:, c]``: one kernel ``tied`` shared by every map channel plus a
    per-channel residual that starts at zero (the location channels keep free kernels).

    Ours (``AMGANConfig.tie_map_channels``). The lip-corner signs live in map channel 1
    (:data:`faceage.amgan.maps.SIGN_CHANNEL`), every other sign in channel 0, and both channels hold the
    age everywhere else. With free kernels, only the two lip-corner edits ever train what channel 1's
    values mean, and the shipped weights of the fifth session ignored it: raising a lip corner in
    channel 1 moved its zone's texture measure by 0.03, and the same raise written into channel 0 by
    0.41, as much as any other sign (16 test faces). With the tied kernel, what every sign teaches
    about a map value applies to both channels from the start; the residuals learn what differs.

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
            state_dict[prefix + "tied"] = w[:, :self.maps].mean(1, keepdim=True)
            state_dict[prefix + "weight"] = torch.cat([torch.zeros_like(w[:, :self.maps]), w[:, self.maps:]], 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = F.pad(self.tied.expand(-1, self.maps, -1, -1), (0, 0, 0, 0, 0, self.in_channels - self.maps))
        return self._conv_forward(x, self.weight + shared, self.bias)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation [Park et al. 2019]: norm(x) * (1 + gamma(m)) + beta(m).

    The condition m is nearest-resized to the feature size, then a shared 3x3 conv + ReLU to
    ``hidden`` channels, then two 3x3 convs to gamma and beta.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int, norm: str, tied_maps: int = 0):
        super().__init__()
        self.norm = norm
        first = (TiedMapConv(cond_channels, hidden, tied_maps) if tied_maps
                 else nn.Conv2d(cond_channels, hidden, 3, padding=1))
        self.shared = nn.Sequential(first, nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        h = self.shared(cond)
        return param_free_norm(x, self.norm) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """(SPADE -> lrelu 0.2 -> conv3x3) twice, plus a shortcut (SPADE -> 1x1 conv when widths differ)."""

    def __init__(self, in_ch: int, out_ch: int, cfg: AMGANConfig):
        super().__init__()
        mid = min(in_ch, out_ch)
        c, h, n = cfg.cond_channels, cfg.spade_hidden, cfg.norm
        t = cfg.map_channels if cfg.tie_map_channels else 0
        self.norm0, self.conv0 = SPADE(in_ch, c, h, n, t), nn.Conv2d(in_ch, mid, 3, padding=1)
        self.norm1, self.conv1 = SPADE(mid, c, h, n, t), nn.Conv2d(mid, out_ch, 3, padding=1)
        self.learned_shortcut = in_ch != out_ch
        if self.learned_shortcut:
            self.norm_s, self.conv_s = SPADE(in_ch, c, h, n, t), nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv0(F.leaky_relu(self.norm0(x, cond), 0.2))
        dx = self.conv1(F.leaky_relu(self.norm1(dx, cond), 0.2))
        return skip + dx


class _NormAct(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return F.relu(param_free_norm(x, self.kind))


# ----------------------------------------------------------------------------------------------
# Generator


class AMGANGenerator(nn.Module):
    """G(image, aging_map, x_map, y_map) -> (output, A, C); fully convolutional (Sec. 3.2, Fig. 3).

    ``image`` [N, 3, H, W] in [-1, 1]; ``aging_map`` [N, map_channels, H, W] in [0, 1]; ``x_map``
    and ``y_map`` [N, 1, H, W] (or [N, H, W]) patches of :func:`faceage.amgan.maps.location_maps`.
    H and W must be multiples of 2**n_down.
    """

    def __init__(self, cfg: AMGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AMGANConfig()
        ch = cfg.g_channels
        enc = [nn.Conv2d(3, ch[0], 7, padding=3), _NormAct(cfg.norm)]
        for i in range(cfg.n_down):
            enc += [nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1), _NormAct(cfg.norm)]
        self.encoder = nn.Sequential(*enc)
        self.bottleneck = nn.ModuleList(SPADEResBlock(ch[-1], ch[-1], cfg) for _ in range(cfg.n_bottleneck))
        self.up = nn.ModuleList(SPADEResBlock(ch[i + 1], ch[i], cfg) for i in reversed(range(cfg.n_down)))
        self.color_head = nn.Conv2d(ch[0], 3, 7, padding=3)
        self.attention_head = nn.Conv2d(ch[0], 1, 7, padding=3)
        if cfg.residual_colour:  # C starts as the input (AMGANConfig.residual_colour)
            nn.init.zeros_(self.color_head.weight)
            nn.init.zeros_(self.color_head.bias)

    def forward(self, image, aging_map, x_map, y_map):
        n, _, h, w = image.shape
        m = 2**self.cfg.n_down
        if h % m or w % m:
            raise BadParameterError(f"G needs sides that are multiples of {m}, got {h}x{w}")
        x_map = x_map.reshape(n, 1, h, w) if x_map.dim() == 3 else x_map
        y_map = y_map.reshape(n, 1, h, w) if y_map.dim() == 3 else y_map
        if aging_map.shape[1] != self.cfg.map_channels:
            raise BadParameterError(
                f"the aging map has {aging_map.shape[1]} channels, G expects {self.cfg.map_channels}"
            )
        cond = torch.cat([aging_map, x_map, y_map], 1).to(image.dtype)
        feat = self.encoder(image)
        for block in self.bottleneck:
            feat = block(feat, cond)
        for block in self.up:
            feat = block(F.interpolate(feat, scale_factor=2, mode="nearest"), cond)
        feat = F.leaky_relu(feat, 0.2)
        color = torch.tanh(self.color_head(feat))
        if self.cfg.residual_colour:
            color = (image + color).clamp(-1.0, 1.0)
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
        self.age_local = None
        if cfg.d_map_layer:
            c_mid = min(cfg.d_base * 2 ** (cfg.d_map_layer - 1), cfg.d_max)
            self.age_local = nn.Conv2d(c_mid, cfg.map_channels, 3, padding=1)
            nn.init.zeros_(self.age_local.weight)
            nn.init.zeros_(self.age_local.bias)

    def forward(self, image):
        """-> critic map [N, 1, h, w], (x, y) [N, 2], aging map [N, map_channels, 10, 10]."""
        k = 2 * self.cfg.d_map_layer  # trunk modules (conv, act) before the local branch
        mid = self.trunk[:k](image)
        h = self.trunk[k:](mid)
        critic = self.critic(h)
        loc = self.loc(h.mean((2, 3)))
        age = F.adaptive_avg_pool2d(self.age(h), AGE_GRID)
        if self.age_local is not None:
            age = age + F.adaptive_avg_pool2d(self.age_local(mid), AGE_GRID)
        return critic, loc, age


# ----------------------------------------------------------------------------------------------
# Losses (Eq. 1-4) as small pure functions


def critic_loss(real_critic: torch.Tensor, fake_critic: torch.Tensor) -> torch.Tensor:
    """D's WGAN loss, -L_WGAN = E[D(fake)] - E[D(real)] (Eq. 1)."""
    return fake_critic.mean() - real_critic.mean()


def generator_adv_loss(fake_critic: torch.Tensor) -> torch.Tensor:
    """G's WGAN loss, -E[D(G(i, a))]."""
    return -fake_critic.mean()


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
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


def _grad_l1(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between the horizontal and between the vertical image gradients of ``a`` and ``b``; with ``w``
    [N, 1, H, W], each gradient weighted by the smaller weight of its two pixels."""
    def grads(x):
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (ax, ay), (bx, by) = grads(a), grads(b)
    if w is None:
        return (ax - bx).abs().mean() + (ay - by).abs().mean()
    wx, wy = torch.minimum(w[..., :, 1:], w[..., :, :-1]), torch.minimum(w[..., 1:, :], w[..., :-1, :])
    return masked_mean((ax - bx).abs(), wx) + masked_mean((ay - by).abs(), wy)


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor, scales: int = 3,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """L_Cyc substitute for the paper's perceptual loss: pixel L1 + gradient L1 at ``scales`` scales.

    ``weight`` [N, 1, H, W] in [0, 1] (ours, for the teacher term's regions): each pixel's share in the
    means, average-pooled with the images at coarser scales; None: every pixel counts the same."""
    if weight is None:
        loss = (reconstructed - original).abs().mean()
    else:
        loss = masked_mean((reconstructed - original).abs(), weight)
    a, b, w = reconstructed, original, weight
    for i in range(scales):
        if i:
            if min(a.shape[-2:]) < 4:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            w = None if w is None else F.avg_pool2d(w, 2)
        loss = loss + _grad_l1(a, b, w)
    return loss


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The two colour-difference channels (B - Y, R - Y) of an RGB batch, Y the BT.601 luma."""
    y = luma(x)
    return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1)


def colour_shift_loss(edited: torch.Tensor, original: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """Ours, not the paper's: L1 between the chroma of the edit and of its input, both averaged over
    ``pool`` x ``pool`` blocks. It charges a tint spread over a region (the colour cast that a short
    run uses to move D's aging-map estimate) and leaves luminance (wrinkles, shadows, greying hair's
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


def edit_tone_loss(edited: torch.Tensor, base: torch.Tensor, zone: torch.Tensor, k: int = 7,
                   chroma_weight: float = 0.0) -> torch.Tensor:
    """Ours, not the paper's: mean |low-pass(edited - base)| over the pixels of ``zone`` [N, 1, H, W], plus
    ``chroma_weight`` times the mean |chroma(edited) - chroma(base)| there at full resolution.

    ``edited`` and ``base`` as in :func:`zone_leak_loss`, ``zone`` the edited sign's zone. The low pass is a
    ``k`` x ``k`` box mean of all three channels, so the term charges a change of the zone's tone and
    colour (a blotch) and leaves its fine texture (a wrinkle, thinner than ``k``) nearly free. The weak
    labels divide ridge energy by the zone's luminance, so a texture target alone can be met by darkening
    the zone; this term closes that path. The chroma part charges thin coloured marks too (a wrinkle is
    mostly a change of luminance)."""
    low = F.avg_pool2d(edited - base, k, stride=1, padding=k // 2, count_include_pad=False)
    loss = masked_mean(low.abs(), zone)
    if chroma_weight:
        loss = loss + chroma_weight * masked_mean((chroma(edited) - chroma(base)).abs(), zone)
    return loss


def shift_consistency_loss(a: torch.Tensor, b: torch.Tensor, offset: torch.Tensor, margin: int) -> torch.Tensor:
    """Ours, not the paper's: mean |a - b| where two overlapping patches' outputs show the same pixels.

    ``a`` and ``b`` [N, C, P, P] are G's outputs on two crops of one face (same image, map and location
    maps) whose top-left corners differ by ``offset`` [N, 2] (b's corner minus a's, rows then columns);
    pixels within ``margin`` of either crop's border are left out (padding changes them). A fully
    convolutional G should give the same pixel whichever crop it sits in (the premise of Sec. 3.6: train on
    patches, infer on the whole image). With strided convolutions and zero padding it need not: the
    shipped CPU weights of the seventh session drew horizontal lines on the rows 1-8 of every 16 counted
    from the crop's top, whatever the face, and their full-image output differed from that of a crop
    starting 1-15 rows lower by about five times what a crop starting at row 0 did (0.0195 against 0.0041
    on [0, 1] pixels: ``train.eval_amgan.crop_consistency``). 0 where no pixel overlaps."""
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
    """Adam for G and D with the paper's learning rates and betas (Sec. 3.5)."""
    t = t or AMGANTrainDefaults()
    return (torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=t.betas),
            torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=t.betas))


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float = 0.999) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G, for inference (Sec. 3.6; the decay is ours)."""
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)


def make_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of G to be updated with :func:`ema_update`."""
    G_ema = copy.deepcopy(G).eval()
    for p in G_ema.parameters():
        p.requires_grad_(False)
    return G_ema


# ----------------------------------------------------------------------------------------------
# G's context margin (AMGANConfig.context)


def pad_context(margin: int, image: torch.Tensor, *maps: torch.Tensor) -> list[torch.Tensor]:
    """``image`` [N, 3, H, W] reflected ``margin`` pixels out on every side, each of ``maps`` [N, C, H, W]
    (aging maps, masks) with its edge values repeated: G's input window around a face or patch."""
    if margin == 0:
        return [image, *maps]
    if margin >= min(image.shape[-2:]):
        raise BadParameterError(f"a {image.shape[-2]}x{image.shape[-1]} image is too small for G's context margin "
                                f"of {margin} px: give G a larger image")
    pad = (margin,) * 4
    return [F.pad(image, pad, mode="reflect"), *(F.pad(m, pad, mode="replicate") for m in maps)]


def crop_context(margin: int, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """The centres of G's outputs on windows padded by ``margin`` (None stays None)."""
    if margin == 0:
        return list(tensors)
    return [None if t is None else t[..., margin:-margin, margin:-margin] for t in tensors]


def generate(G: AMGANGenerator, image: torch.Tensor, aging_map: torch.Tensor, loc: torch.Tensor | None = None):
    """G on a whole image in one pass, with its context margin: (output, A, C), each the size of ``image``.

    ``loc`` [N or 1, 2, H + 2c, W + 2c]: the location maps of the padded window (c = ``G.cfg.context``);
    default: the image's own, extended (:func:`faceage.amgan.maps.location_maps` with ``margin`` c). A
    crop of a larger image passes the matching window of that image's extended maps.
    """
    c = G.cfg.context
    n, _, h, w = image.shape
    if loc is None:
        loc = location_maps(h, w, c).to(image)[None]
    loc = loc.expand(n, 2, h + 2 * c, w + 2 * c)
    padded, padded_map = pad_context(c, image, aging_map)
    return tuple(crop_context(c, *G(padded, padded_map, loc[:, :1], loc[:, 1:])))


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
        rise = (0.5 - 0.5 * torch.cos(math.pi * t.clamp(0.0, 1.0)))
        rise[:q] = 0.0
        rise[overlap - q:] = 1.0
        if ramp_start:
            w[:overlap] = rise
        if ramp_end:
            w[n - overlap:] = rise.flip(0)
    return w


def _starts(total: int, tile: int, step: int) -> list[int]:
    if tile >= total:
        return [0]
    starts = list(range(0, total - tile, step)) + [total - tile]
    return sorted(set(starts))


@torch.no_grad()
def generate_tiled(G: AMGANGenerator, image: torch.Tensor, aging_map: torch.Tensor,
                   tile: int = 256, overlap: int = 64, with_attention: bool = False):
    """G's output on a full image computed tile by tile, for images too large for memory.

    Returns the output [N, 3, H, W], or (output, attention mask A [N, 1, H, W]) with ``with_attention``
    (A is blended across tiles with the same weights).

    ``image`` [N, 3, H, W], ``aging_map`` [N, C, H, W] for the full image; the location maps are
    those of the full image (:func:`faceage.amgan.maps.location_maps`), cropped with each tile. Tiles
    of side ``tile`` overlap by at least ``overlap`` pixels; over an overlap the outer quarter of
    each tile gets weight 0 and the middle half a raised-cosine cross-fade (weight 1 at the image
    borders). ``tile``, ``overlap`` and H, W must be multiples of 2**n_down so every tile sees the
    pixel grid of one pass. With positional norm G is translation-equivariant, so a tile pixel
    differs from the one-pass pixel only within G's receptive-field margin of the tile edge (zero
    padding); when ``overlap / 4`` is at least that margin, the result *equals* the one-pass output
    (up to float rounding). Smaller overlaps give a smooth, close approximation. With a context margin
    (``G.cfg.context``) the image is padded as in :func:`generate` first and the tiles cover the padded
    image (the image sides plus twice the margin must then be multiples of 2**n_down too).
    """
    m, c = 2**G.cfg.n_down, G.cfg.context
    image, aging_map = pad_context(c, image, aging_map)  # G's context margin (AMGANConfig.context)
    n, _, h, w = image.shape
    if tile % m or overlap % m or h % m or w % m or tile <= 0 or overlap < 0 or overlap * 2 > tile:
        raise BadParameterError(
            f"tile ({tile}), overlap ({overlap}) and the image sides ({h}x{w}) must be multiples of {m}, "
            "with 0 <= 2 * overlap <= tile"
        )
    loc = location_maps(h - 2 * c, w - 2 * c, c).to(image)[None].expand(n, 2, h, w)
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
    out, att = crop_context(c, out / weight, att / weight)
    return (out, att) if with_attention else out
