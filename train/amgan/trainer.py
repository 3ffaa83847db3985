"""One AgingMapGAN training step (Sec. 3.5, Eq. 1-4): patches, G step with cycle, D step with GP, EMA.

Per step, with a batch of aligned faces x, their ages and weak sign labels (:mod:`train.amgan.sign_scores`):
    A_s     = aging map of the face's own labels     A_t = map of sampled target labels (amgan_maps)
    corners = random patch corners; I_p, A_s,p, A_t,p, X_p, Y_p = the same crop of each (Sec. 3.1)
    fake    = G(I_p | A_t,p, X_p, Y_p)               cyc = G(fake | A_s,p, X_p, Y_p)
    G loss  = -D(fake) + l_cyc L_Cyc(cyc, I_p) + l_age |D_Age(fake) - A_t,p|^2 + l_loc |D_Loc(fake) - xy|^2
              + attention regulariser of both attention masks                          (Eq. 1-4)
              + l_local |G(I_p | A'_t,p) - fake| beyond the edited zone (A'_t: A_t with one sign's score
                moved: the per-sign locality the paper shows but does not train for)
              + l_sign |CDF(texture of fake in zone z) - texture part of the target score of z| (the weak
                labels' measure, :mod:`train.amgan.sign_scores`, as a fixed judge of G)
              + l_edit |CDF(texture of G(I_p | A'_t,p) in zone k) - CDF(texture of fake in zone k) - the change of
                k's texture part| for the edited sign k (the relative twin of l_sign)
              + l_tone |low-pass(G(I_p | A'_t,p) - fake)| in zone k (a sign changes texture, not tone)
              + l_shift |G(I_q | A_t,q) - fake| where the crop q, moved from p by a few pixels, overlaps p
                (the same pixel gets the same output whichever crop holds it)
    D loss  = D(fake) - D(real) + l_gp GP + l_age |D_Age(real) - A_s,p|^2 + l_loc |D_Loc(real) - xy|^2
The last five G terms are ours (0, off, by default: the paper's objective); the shipped weights use them all
(train/configs/amgan_utkface128.toml). G and D are both updated every step (no n_critic), Adam(0, 0.99),
lr_G = 7e-5, lr_D = 2e-4, both decayed linearly to 0 at ``cfg.steps`` (Sec. 3.5); the EMA of G is what
ships (Sec. 3.6). The losses are in :mod:`train.amgan.losses`.

Choices where the paper is silent (ours): D_Age and D_Loc learn on real patches and judge fakes (as
StarGAN's class head); the cycle loss is :func:`train.amgan.losses.cycle_loss` (no pretrained
perceptual network offline); GANimation's attention weights 0.1 / 1e-5; target maps are age-only with
probability ``uniform_prob`` (0.3), else per-sign ``0.5 U(0,1) + 0.5 age`` like the weak labels; target
ages uniform in [0, 90]; EMA half-life ``ema_half_life_images``; no horizontal flips (the labels are per
side of the face, a flip would swap them). With ``face_placement``, each face's maps put the zones
where its own landmarks say (:mod:`train.amgan.placement`: a similarity fit; the paper's per-face
boxes, Sec. 3.3), not where the template's are.

Multi-process (``train.distributed``): G's two passes run in one forward of a DDP-wrapped
:class:`CycleStep`; D's real and fake patches go through one forward of the DDP-wrapped D; the gradient
penalty (double backward) runs on the unwrapped D and its gradients are averaged by
:meth:`Dist.average_gradients`, then added to DDP's averaged gradients. Targets and patch corners are
drawn for the global batch on every rank and sliced with :meth:`Dist.local`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from faceage.amgan.editor import net_config
from faceage.amgan.maps import SIGNS
from faceage.amgan.model import AMGANDiscriminator, AMGANGenerator, generate, location_maps
from faceage.checkpoint import load_training_state, training_state
from faceage.config import from_dict
from faceage.data.ages import normalize_age
from train.amgan import losses
from train.amgan.losses import AMGANTrainDefaults
from train.amgan.maps import (
    MapBasis,
    cover_table,
    covered_edit_weights,
    crop_batch,
    outside_edit,
    patch_centres,
    sample_patches,
    sample_sign_edits,
    sample_targets,
    shift_corners,
)
from train.amgan.placement import PlacedMaps
from train.amgan.sign_scores import IMAGE_WEIGHT, SignCalibration, masked_measures, template_zone_masks
from train.distributed import Dist
from train.ema import ema_decay, ema_update, make_ema, requires_grad

log = logging.getLogger("faceage.train")

IDENTITY_A, IDENTITY_STEPS = 0.98, 100
"""Mean attention A above which, for this many steps in a row, the trainer warns that G is the identity."""

PER_SIGN_TERMS = ("local", "sign", "edit", "tone")
"""Our four per-sign terms (``lambda_<term>`` of :class:`AMGANTrainConfig`), which ``per_sign_from`` delays."""

DELAYED_TERMS = {**{term: "per_sign_from" for term in PER_SIGN_TERMS}, "shift": "shift_from"}
"""Our delayed terms and the :class:`AMGANTrainConfig` field holding the step at which each switches on."""

RETIRED_TRAIN_OPTIONS = {
    "lambda_age_d": None,
    "lambda_loc_d": None,
    "lambda_colour": 0.0,
    "augment_shift": 0.0,
    "augment_scale": 0.0,
    "tone_chroma": 0.0,
    "cycle_scales": 3,
    "lambda_teacher": 0.0,
    "teacher": "",
    "teacher_sigma": 4.5,
    "teacher_signs": False,
    "judge": "achromatic",
    "edit_covered": True,
}
"""Removed ``[amgan]`` options at the value that means what the trainer now does (older checkpoints and the
shipped manifest hold them; the lesson of each is in assets/amgan_utkface128.md, "Tried, not shipped")."""


@dataclass
class AMGANTrainConfig(AMGANTrainDefaults):
    """The ``[amgan]`` table of a training config: the paper's weights and rates plus our choices."""

    patch: int = 64  # training patch side (the paper: 128-512 on 1024 px; ours: 64 on 128 px)
    target_age_range: tuple = (0.0, 90.0)
    uniform_prob: float = 0.3  # share of age-only target maps
    image_weight: float = IMAGE_WEIGHT  # target sign = w U(0,1) + (1 - w) age (as the weak labels)
    lr_decay: bool = True  # linear to 0 at cfg.steps (Sec. 3.5)
    # ours: start A at sigmoid(b) (None: PyTorch's default init). While A ~ 1 the colour head C gets almost
    # no gradient and G stays the identity; a low start (-2: A = 0.12) makes C learn the face first
    attention_bias_init: float | None = None
    # ours: place each face's zones from its own landmarks (train.amgan.placement; the paper's per-face
    # boxes, Sec. 3.3) instead of the template's for every face. Off in the shipped weights; kept for the
    # GPU run of issue #32 (train/gpu_chunk.sh)
    face_placement: bool = False
    # ours: weight of amgan_losses.zone_leak_loss: each step also edits one sign of each target map, drawn
    # among the signs whose zone has at least ``sign_min_cover`` of its area in the step's patch, each
    # weighted by 1 / P(covered) so all signs are drawn equally often (train.amgan.maps.covered_edit_weights),
    # and charges G for the change it makes beyond that sign's zone and a margin of 2 map-blur sigmas
    lambda_local: float = 0.0
    # ours: weight of the sign term: the texture judge (train.amgan.sign_scores: the achromatic ridge energy, the
    # smallest of the R, G and B ones, in each zone, through its CDF over the training split) on G's fake
    # patch, L1 against the texture part of the target score, (s - (1 - image_weight) a) / image_weight
    # clamped to [0, 1], for each zone with at least ``sign_min_cover`` of its area in the patch. A fixed
    # judge, like CUSP's age classifier: D's 10 x 10 map estimate is the paper's only per-sign signal, and it
    # left zones nearly untouched. Achromatic, so a line scores only as far as it is dark in every channel
    # (a luminance judge was met with saturated coloured marks)
    lambda_sign: float = 0.0
    sign_min_cover: float = 0.5
    # ours: weight of the edit-response term, the relative twin of the sign term: with the edited map of
    # lambda_local's pair (one sign k moved), the judge in k's zone on G(I_p | A'_t,p) minus on the fake, L1
    # against the change of k's texture part (U'_k - U_k), where k's zone covers at least ``sign_min_cover``
    # of the patch. It asks a slider to move the texture of its own zone by its step, not for an absolute
    # texture level. Needs the edit pair: draws it even when lambda_local is 0
    lambda_edit: float = 0.0
    # ours: weight of amgan_losses.edit_tone_loss on the same pair, in the edited sign's zone: a sign's edit
    # may change the zone's texture but not its tone (the labels' measure rises when a zone darkens)
    lambda_tone: float = 0.0
    # ours: the step at which the four per-sign terms (PER_SIGN_TERMS) switch on; before it G trains on the
    # paper's objective alone (on 2 CPU cores, runs from scratch with the terms on from step 0 mostly fell
    # into the identity). 0: from the start
    per_sign_from: int = 0
    # ours: weight of amgan_losses.shift_consistency_loss: each step G also edits a second crop of each face,
    # its corner moved by up to ``shift_max`` pixels in each direction (same target map), and pays for the
    # difference between the two crops' attention masks and between their colour heads where they
    # overlap, ``shift_margin`` pixels from either crop's border. It asks G to draw what a pixel's face
    # and map call for, not what its place in the crop's grid does, and full-image inference to match patch
    # training. On A and C, not on the composite A I + (1 - A) C, which A = 1 makes equal (charged on the
    # composite, it sent A to 1)
    lambda_shift: float = 0.0
    shift_max: int = 16
    shift_margin: int = 8
    # ours: the step at which lambda_shift switches on (from scratch with it from step 0, A fell to 0.01: G
    # generated every pixel). 0: from the start
    shift_from: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> AMGANTrainConfig:
        """From an ``[amgan]`` table: unknown keys refused, :data:`RETIRED_TRAIN_OPTIONS` read only when off."""
        return from_dict(cls, d, retired=RETIRED_TRAIN_OPTIONS, where="[amgan]")

    def to_dict(self) -> dict:
        return asdict(self)


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k weights[k] * terms[k], in the order of ``terms``: a step's loss from its terms."""
    return sum(weights[k] * v for k, v in terms.items())


class Draw(NamedTuple):
    """One step's random draws, this rank's rows (:meth:`AMGANTrainer._draw`)."""

    a_t: torch.Tensor  # target ages [n], normalised
    s_t: torch.Tensor  # target sign scores [n, Z]
    corners: torch.Tensor  # patch corners [n, 2] (top, left)
    s_e: torch.Tensor | None  # the edit pair's scores (one sign moved), or None
    corners_q: torch.Tensor | None  # lambda_shift's second crops' corners, or None


class CycleStep(torch.nn.Module):
    """G's part of one generator step as one ``forward`` (for DDP): the edit and the cycle back."""

    def __init__(self, G: AMGANGenerator):
        super().__init__()
        self.G = G

    def forward(self, image, target_map, source_map, x_map, y_map, edited_map=None, shifted=None):
        """-> fake, its attention and colour, the cycle and its attention, G(image | edited_map) (or None)
        and the attention and colour of G(*shifted) (or None; ``shifted`` = (image, target map, x map, y
        map) of a second crop). The edit, ``edited_map`` and ``shifted`` share one pass of G."""
        n = len(image)
        inputs = [(image, target_map, x_map, y_map)]
        if edited_map is not None:
            inputs.append((image, edited_map, x_map, y_map))
        if shifted is not None:
            inputs.append(tuple(shifted))
        out, att, colour = self.G(*(torch.cat(parts) for parts in zip(*inputs)))
        fake, att_fake, colour_fake = out[:n], att[:n], colour[:n]
        edited = out[n : 2 * n] if edited_map is not None else None
        other = (att[-n:], colour[-n:]) if shifted is not None else None
        cyc, att_cyc, _ = self.G(fake, source_map, x_map, y_map)
        return fake, att_fake, colour_fake, cyc, att_cyc, edited, other


class AMGANTrainer:
    """Holds G, its EMA copy, D and both optimisers; ``train_step(x, age, signs[, theta])`` per batch."""

    def __init__(self, cfg, device: torch.device, dist: Dist | None = None):
        self.cfg, self.device = cfg, device
        self.dist = dist or Dist(device=device)
        if cfg.augment_flip:
            raise ValueError(
                "AMGAN needs augment_flip = false: the sign labels are per side of the face "
                "and a horizontal flip would swap left and right"
            )
        self.net_cfg = net_config(asdict(cfg.net))  # the network alone (cfg.net also holds the crop side)
        self.t = cfg.amgan
        self.resolution = cfg.net.resolution
        m = 2**self.net_cfg.n_down
        if self.t.patch % m or self.resolution % m or self.t.patch > self.resolution:
            raise ValueError(
                f"patch ({self.t.patch}) and resolution ({self.resolution}) must be multiples of "
                f"{m} (2**n_down), with patch <= resolution"
            )
        torch.manual_seed(cfg.seed)
        self.G = AMGANGenerator(self.net_cfg).to(device)
        if self.t.attention_bias_init is not None:  # a low start makes the colour head C learn early
            with torch.no_grad():
                self.G.attention_head.bias.fill_(self.t.attention_bias_init)
        self.D = AMGANDiscriminator(self.net_cfg).to(device)
        self.G_ema = make_ema(self.G)
        self.G_step = self.dist.wrap(CycleStep(self.G))
        self.D_ddp = self.dist.wrap(self.D)
        self.opt_G, self.opt_D = losses.make_optimizers(self.G, self.D, self.t)
        self.basis = MapBasis(self.resolution).to(device)
        self.location = location_maps(self.resolution, self.resolution).to(device)  # [2, S, S]
        self.zones = template_zone_masks(self.resolution).to(device)  # [Z, S, S], the labels' zones
        self.calibration: SignCalibration | None = None  # the judge's CDF; train.train sets it from the data
        self.cover = cover_table(self.zones.cpu(), self.t.patch)  # which zones each patch corner shows
        self.placed = PlacedMaps(self.resolution).to(device) if self.t.face_placement else None
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)  # targets and patch corners
        self.step = 0
        self._identity_run = 0  # steps in a row with mean A above IDENTITY_A (_watch_identity)

    # ------------------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        """Linear decay to 0 at ``cfg.steps`` (Sec. 3.5); a pure function of the step (resume-safe)."""
        f = max(0.0, 1.0 - self.step / max(self.cfg.steps, 1)) if self.t.lr_decay else 1.0
        for opt, lr in ((self.opt_G, self.t.lr_g), (self.opt_D, self.t.lr_d)):
            for g in opt.param_groups:
                g["lr"] = lr * f
        return f

    def _lam(self, term: str) -> float:
        """The weight of a delayed term of ours (:data:`DELAYED_TERMS`) at this step: 0 before its start."""
        return getattr(self.t, f"lambda_{term}") if self.step >= getattr(self.t, DELAYED_TERMS[term]) else 0.0

    def _draw(self, n_local: int) -> Draw:
        """Targets and patch corners for the global batch (every rank draws all), this rank's rows."""
        n = n_local * self.dist.world
        a_t, s_t = sample_targets(self.rng, n, self.t.target_age_range, self.t.image_weight, self.t.uniform_prob)
        corners = sample_patches(self.rng, n, self.resolution, self.t.patch)
        paired = self._lam("local") or self._lam("edit") or self._lam("tone")
        s_e = None
        if paired:
            w = covered_edit_weights(self.cover, corners, self.t.sign_min_cover)
            s_e = self.dist.local(sample_sign_edits(self.rng, s_t, w))
        corners_q = None
        if self._lam("shift"):
            corners_q = self.dist.local(
                shift_corners(self.rng, corners, self.resolution, self.t.patch, self.t.shift_max)
            )
        return Draw(self.dist.local(a_t), self.dist.local(s_t), self.dist.local(corners), s_e, corners_q)

    def prepare(self, x, age, signs, theta=None) -> dict[str, torch.Tensor]:
        """One step's patches and targets: draws targets and corners, maps, crops (Sec. 3.1).

        ``theta`` [N, 2, 3]: each face's zone placement (:mod:`train.amgan.placement`); None: the template's.

        -> ``I_p`` (image patches), ``As_p`` / ``At_p`` (own / target aging-map patches), ``xy`` (patch
        centres, D_Loc's target), ``I_g``, ``As_g``, ``At_g`` (G's inputs: the same patches) and ``L_g`` (the
        location maps' patches, x then y); with ``lambda_local``, ``lambda_edit`` or
        ``lambda_tone``, also ``Ae_g`` (the target map with one sign edited) and ``out_p`` (1 beyond that
        edit's zone and margin); with ``lambda_sign``, ``Z_p`` (the zone masks' patches), ``U_t`` and
        ``Z_valid`` (see ``lambda_sign``); with ``lambda_edit`` or ``lambda_tone``, ``Z_p``, ``Z_valid``,
        ``k_e`` (the edited sign) and, with ``lambda_edit``, ``dU_e`` (its texture part's change); with
        ``lambda_shift``, ``I_q``, ``At_q``, ``L_q`` (the second crop) and ``offset_q`` (its corner minus the
        first's).
        """
        P, S = self.t.patch, self.resolution
        a_t, s_t, corners, s_e, corners_q = self._draw(len(x))
        dev = self.device
        x, age, signs = x.to(dev), age.to(dev), signs.to(dev).float()
        if theta is None:
            make = self.basis.maps
        else:
            if self.placed is None:
                raise ValueError("this batch carries zone placements but amgan.face_placement is off")
            theta = theta.to(dev)

            def make(a, s):
                return self.placed.maps(a, s, theta)

        A_s = make(normalize_age(age.float()), signs)
        A_t = make(a_t.to(dev), s_t.to(dev))
        G_in = {"I_g": x.float(), "As_g": A_s, "At_g": A_t}  # what G reads, full size
        extra = {}  # what the loss terms read, full size
        textured = bool(self._lam("sign") or self._lam("edit") or self._lam("tone"))
        if textured:
            extra["Z_p"] = self.zones[None].expand(len(x), -1, -1, -1)
        if s_e is not None:
            G_in["Ae_g"] = A_e = make(a_t.to(dev), s_e.to(dev))
            extra["out_p"] = outside_edit(A_t, A_e, self.basis.blur_margin)
        G_in["L_g"] = self.location[None].expand(len(x), -1, -1, -1)
        b = {k: crop_batch(v, corners, P) for k, v in G_in.items()}  # G's input patches
        b.update(
            I_p=b["I_g"],
            As_p=b["As_g"],
            At_p=b["At_g"],
            xy=patch_centres(corners, P, S).to(dev),
            **{k: crop_batch(v, corners, P) for k, v in extra.items()},
        )
        if corners_q is not None:  # the second crop of lambda_shift
            b.update(
                {q: crop_batch(G_in[g], corners_q, P) for q, g in (("I_q", "I_g"), ("At_q", "At_g"), ("L_q", "L_g"))},
                offset_q=corners_q - corners,
            )
        if textured:
            w, a = self.t.image_weight, a_t.to(dev)[:, None]

            def texture_part(s):  # the texture parts of scores [n, Z]
                return ((s.to(dev) - (1 - w) * a) / w).clamp(0.0, 1.0)

            cover = b["Z_p"].flatten(2).sum(2) / self.zones.flatten(1).sum(1)
            b["Z_valid"] = (cover >= self.t.sign_min_cover).float()
            if self._lam("sign"):
                b["U_t"] = texture_part(s_t)
            if s_e is not None:
                b["k_e"] = k = (s_e - s_t).abs().argmax(1).to(dev)
            if self._lam("edit"):
                b["dU_e"] = (texture_part(s_e) - texture_part(s_t)).gather(1, k[:, None])[:, 0]
        return b

    def generator_weights(self) -> dict[str, float]:
        """The weight of each of :meth:`generator_terms` in G's loss ("att" holds its own lambdas)."""
        t = self.t
        return {
            "adv": 1.0,
            "cyc": t.lambda_cyc,
            "age": t.lambda_age,
            "loc": t.lambda_loc,
            "att": 1.0,
            **{k: self._lam(k) for k in DELAYED_TERMS},
        }

    def generator_terms(self, b: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """G's loss terms, unweighted (Eq. 1-4), on the batch ``b`` of :meth:`prepare`; and the outputs
        (``fake``, ``att_fake``, ``cyc``, ``att_cyc``). "att" is the attention regulariser of both masks
        with ``lambda_mask`` and ``lambda_tv`` inside it (its weight in :meth:`generator_weights` is 1)."""
        t, I_p, At_p, L_g = self.t, b["I_p"], b["At_p"], b["L_g"]
        shifted = (b["I_q"], b["At_q"], b["L_q"][:, :1], b["L_q"][:, 1:]) if "I_q" in b else None
        fake, att_fake, colour_fake, cyc, att_cyc, edited, other = self.G_step(
            b["I_g"], b["At_g"], b["As_g"], L_g[:, :1], L_g[:, 1:], b.get("Ae_g"), shifted
        )
        critic_f, loc_f, age_f = self.D(fake)
        terms = {
            "adv": losses.generator_adv_loss(critic_f),
            "cyc": losses.cycle_loss(cyc, I_p),
            "age": losses.age_loss(age_f, At_p),
            "loc": losses.loc_loss(loc_f, b["xy"]),
            "att": (
                losses.attention_loss(att_fake, t.lambda_mask, t.lambda_tv)
                + losses.attention_loss(att_cyc, t.lambda_mask, t.lambda_tv)
            ),
            "local": (fake.new_zeros(()) if edited is None else losses.zone_leak_loss(edited, fake, b["out_p"])),
            "shift": (
                fake.new_zeros(())
                if other is None
                else losses.shift_consistency_loss(att_fake, other[0], b["offset_q"], t.shift_margin)
                + losses.shift_consistency_loss(colour_fake, other[1], b["offset_q"], t.shift_margin)
            ),
            "sign": fake.new_zeros(()),
            "edit": fake.new_zeros(()),
            "tone": fake.new_zeros(()),
        }
        if "k_e" in b:
            rows = torch.arange(len(fake), device=fake.device)
            terms["tone"] = losses.edit_tone_loss(edited, fake, b["Z_p"][rows, b["k_e"]][:, None])
        if "U_t" in b or "dU_e" in b:
            tex_fake = self._texture(fake, b)
            if "U_t" in b:
                terms["sign"] = losses.masked_mean((tex_fake - b["U_t"]).abs(), b["Z_valid"])
            if "dU_e" in b:
                k = b["k_e"][:, None]
                moved = (self._texture(edited, b) - tex_fake).gather(1, k)[:, 0]
                terms["edit"] = losses.masked_mean((moved - b["dU_e"]).abs(), b["Z_valid"].gather(1, k)[:, 0])
        return terms, {"fake": fake, "att_fake": att_fake, "cyc": cyc, "att_cyc": att_cyc}

    def _texture(self, images: torch.Tensor, b: dict) -> torch.Tensor:
        """[n, Z]: the weak labels' texture CDF of ``images`` in each zone patch of ``b`` (differentiable)."""
        if self.calibration is None:
            raise ValueError(
                "amgan.lambda_sign and amgan.lambda_edit need the sign labels' calibration: train "
                "through train.train (it sets trainer.calibration from the data) or set it yourself"
            )
        return self.calibration.soft_cdf(masked_measures(images, b["Z_p"], achromatic=True))

    def discriminator_weights(self) -> dict[str, float]:
        """The weight of each of :meth:`discriminator_terms` in D's loss (the GP's is ``lambda_gp``)."""
        return {"wgan": 1.0, "age": self.t.lambda_age, "loc": self.t.lambda_loc}

    def discriminator_terms(self, b: dict, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss terms, unweighted, but for the gradient penalty (:meth:`_gradient_penalty_grads`)."""
        I_p = b["I_p"]
        critic, loc_pred, age_pred = self.D_ddp(torch.cat([I_p, fake]))
        critic_r, critic_f = critic.chunk(2)
        return {
            "wgan": losses.critic_loss(critic_r, critic_f),
            "age": losses.age_loss(age_pred[: len(I_p)], b["As_p"]),
            "loc": losses.loc_loss(loc_pred[: len(I_p)], b["xy"]),
        }

    def train_step(self, x, age, signs, theta=None) -> dict[str, float]:
        """One G step and one D step on a batch of full faces (``theta``: their zone placements, see
        :meth:`prepare`); returns the loss values."""
        lr_f = self._set_lr()
        b = self.prepare(x, age, signs, theta)

        # --- generator step (Eq. 1-4, G's terms) ----------------------------------------------
        requires_grad(self.G, True)
        requires_grad(self.D, False)
        g, out = self.generator_terms(b)
        loss_G = weighted_sum(g, self.generator_weights())
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        ema_update(self.G_ema, self.G, ema_decay(self.cfg.batch, self.cfg.ema_half_life_images))

        # --- discriminator step (Eq. 1-4, D's terms) -------------------------------------------
        requires_grad(self.G, False)
        requires_grad(self.D, True)
        fake = out["fake"].detach()
        d = self.discriminator_terms(b, fake)
        loss_D = weighted_sum(d, self.discriminator_weights())
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        L_gp = self._gradient_penalty_grads(b["I_p"], fake)
        self.opt_D.step()
        self.step += 1
        self._watch_identity(out["att_fake"].mean().item())
        return {
            "G/adv": g["adv"].item(),
            "G/cyc": g["cyc"].item(),
            "G/age": g["age"].item(),
            "G/loc": g["loc"].item(),
            "G/local": g["local"].item(),
            "G/shift": g["shift"].item(),
            "G/sign": g["sign"].item(),
            "G/edit": g["edit"].item(),
            "G/tone": g["tone"].item(),
            "G/attention": out["att_fake"].mean().item(),
            "G/total": loss_G.item(),
            "D/wgan": d["wgan"].item(),
            "D/gp": L_gp,
            "D/age": d["age"].item(),
            "D/loc": d["loc"].item(),
            "lr_scale": lr_f,
        }

    def _watch_identity(self, mean_a: float) -> None:
        """Warn once when G has kept more than :data:`IDENTITY_A` of its input for :data:`IDENTITY_STEPS`
        steps in a row: it has fallen into the identity (A saturated, so C gets no gradient) and the run
        will not leave it (2 of 3 CPU runs with the per-sign terms from step 0: ``per_sign_from``)."""
        self._identity_run = self._identity_run + 1 if mean_a > IDENTITY_A else 0
        if self._identity_run == IDENTITY_STEPS and self.dist.is_main:
            log.warning(
                "step %d: G has kept more than %.0f%% of its input (attention A) for %d steps: it has "
                "most likely become the identity and will not recover. Stop the run and restart it "
                "with amgan.per_sign_from (the per-sign terms later) or another seed",
                self.step,
                100 * IDENTITY_A,
                IDENTITY_STEPS,
            )

    def _gradient_penalty_grads(self, real, fake) -> float:
        """Add lambda_gp * GP's gradients (unwrapped D, averaged over ranks) to D's DDP-averaged ones."""
        kept = [None if p.grad is None else p.grad.clone() for p in self.D.parameters()]
        self.opt_D.zero_grad(set_to_none=True)
        eps = self.dist.local(torch.rand(len(real) * self.dist.world, generator=self.rng))
        gp = losses.gradient_penalty(self.D, real, fake, eps)
        (self.t.lambda_gp * gp).backward()
        self.dist.average_gradients(self.D)
        for p, g in zip(self.D.parameters(), kept):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        return gp.item()

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, x, ages=(10, 40, 70), raise_sign: str = "forehead") -> torch.Tensor:
        """Grid rows per face (full image, G_ema): input, uniform maps at ``ages``, one sign raised, A."""

        x = x.to(self.device)
        n = len(x)
        rows = [x]
        zeros = torch.zeros(n, len(SIGNS), device=self.device)
        att = None
        for a in ages:
            an = torch.full((n,), normalize_age(float(a)), device=self.device)
            out, att, _ = generate(self.G_ema, x, self.basis.maps(an, zeros + an[:, None]))
            rows.append(out)
        a_mid = torch.full((n,), normalize_age(30.0), device=self.device)
        s = zeros + a_mid[:, None]
        s[:, SIGNS.index(raise_sign)] = 1.0
        rows.append(generate(self.G_ema, x, self.basis.maps(a_mid, s))[0])
        rows.append(att.expand_as(x) * 2 - 1)
        return torch.stack(rows, dim=1).clamp(-1, 1).cpu()

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resume needs: tensors + JSON-able info."""
        tensors, info = training_state(self._modules(), self._optimizers(), self.rng)
        return tensors, {"net": self.net_cfg.to_dict(), "amgan": self.t.to_dict(), **info}

    def load_state(self, tensors, info, step: int) -> None:
        load_training_state(self._modules(), self._optimizers(), self.rng, tensors, info)
        self.step = step

    def generators(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(trained, EMA) copies of the generator: what ``init_weights`` fills."""
        return self.G, self.G_ema

    def _modules(self) -> dict:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    def _optimizers(self) -> dict:
        return {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The shipped weights: the EMA generator only."""
        return dict(self.G_ema.state_dict())
