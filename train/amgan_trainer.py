"""One AgingMapGAN training step (Sec. 3.5, Eq. 1-4): patches, G step with cycle, D step with GP, EMA.

Per step, with a batch of aligned faces x, their ages and weak sign labels (:mod:`faceage.sign_scores`):
    A_s     = aging map of the face's own labels     A_t = map of sampled target labels (amgan_maps)
    corners = random patch corners; I_p, A_s,p, A_t,p, X_p, Y_p = the same crop of each (Sec. 3.1)
    fake    = G(I_p | A_t,p, X_p, Y_p)               cyc = G(fake | A_s,p, X_p, Y_p)
    G loss  = -D(fake) + l_cyc L_Cyc(cyc, I_p) + l_age |D_Age(fake) - A_t,p|^2 + l_loc |D_Loc(fake) - xy|^2
              + attention regulariser of both attention masks                          (Eq. 1-4)
              + l_colour (low-pass chroma shift of G's colour head C from I_p; ours, off by default)
              + l_local |G(I_p | A'_t,p) - fake| beyond the edited zone (A'_t: A_t with one sign's score
                moved; ours, off by default: the per-sign locality the paper shows but does not train for)
              + l_sign |CDF(texture of fake in zone z) - texture part of the target score of z| (ours, off by
                default: the weak labels' own measure, :mod:`faceage.sign_scores`, as a fixed judge of G)
              + l_edit |CDF(texture of G(I_p | A'_t,p) in zone k) - CDF(texture of fake in zone k) - the change of
                k's texture part| for the edited sign k (ours, off by default: the relative twin of l_sign)
              + l_tone |low-pass(G(I_p | A'_t,p) - fake)| in zone k (ours, off by default: texture, not tone)
              + l_shift |G(I_q | A_t,q) - fake| where the crop q, moved from p by a few pixels, overlaps p
                (ours, off by default: the same pixel gets the same output whichever crop holds it)
              + l_teacher (L_Cyc(fake, T_p) + L_Cyc(C, T_p)), T_p CUSP's edit of the face to the target map's
                age, weighted per pixel (ours, off by default: a trained CUSP network as teacher,
                :mod:`train.amgan_teacher`)
    D loss  = D(fake) - D(real) + l_gp GP + l_age_d |D_Age(real) - A_s,p|^2 + l_loc_d |D_Loc(real) - xy|^2
    (l_age_d = l_age and l_loc_d = l_loc, the paper's single weights, unless ``lambda_age_d`` / ``lambda_loc_d`` are set)
G and D are both updated every step (no n_critic), Adam(0, 0.99), lr_G = 7e-5, lr_D = 2e-4, both decayed
linearly to 0 at ``cfg.steps`` (Sec. 3.5); the EMA of G is what ships (Sec. 3.6).

Choices where the paper is silent (ours): D_Age and D_Loc learn on real patches and judge fakes (as
StarGAN's class head); the cycle loss is :func:`faceage.amgan.model.cycle_loss` (no pretrained
perceptual network offline); GANimation's attention weights 0.1 / 1e-5; target maps are age-only with
probability ``uniform_prob`` (0.3), else per-sign ``0.5 U(0,1) + 0.5 age`` like the weak labels; target
ages uniform in [0, 90]; EMA half-life ``ema_half_life_images``; no horizontal flips (the labels are per
side of the face, a flip would swap them). With ``face_placement``, each face's maps put the zones
where its own landmarks say (:mod:`train.amgan_placement`: a similarity fit; the paper's per-face
boxes), not where the template's are. With ``augment_shift`` / ``augment_scale`` each face and its two maps
move together by a random shift and zoom before the patches are cut (the location maps stay), so a zone is
not always at the same image rows. With a context margin c (:attr:`AMGANConfig.context`, ours; 0 in the
paper), G reads each patch with c more pixels on every side (the face reflected beyond its borders, the
maps' edges repeated, the location ramps extended: the windows ``*_g``) and only the centre of its output,
the patch, goes on to D and to every term; the cycle runs G on the whole window of the fake. G's marks
at its own input's borders then fall outside what D judges, and inference pads the same way.

Multi-process (``train.distributed``): G's two passes run in one forward of a DDP-wrapped
:class:`CycleStep`; D's real and fake patches go through one forward of the DDP-wrapped D; the gradient
penalty (double backward) runs on the unwrapped D and its gradients are averaged by
:meth:`Dist.average_gradients`, then added to DDP's averaged gradients. Targets and patch corners are
drawn for the global batch on every rank and sliced with :meth:`Dist.local`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Final, NamedTuple

import torch

from faceage.amgan.maps import location_maps
from faceage.checkpoint import load_training_state, training_state
from faceage.data.ages import normalize_age
from faceage.amgan import model as amgan
from faceage.amgan.model import (AMGANConfig, AMGANDiscriminator, AMGANGenerator, AMGANTrainDefaults,
                                  crop_context, pad_context)
from faceage.sign_scores import IMAGE_WEIGHT, SignCalibration, masked_measures, template_zone_masks
from train.amgan_maps import (MapBasis, cover_table, covered_edit_weights, crop_batch, move_batch, outside_edit,
                              patch_centres, sample_moves, sample_patches, sample_sign_edits, sample_targets,
                              shift_corners)
from train.amgan_placement import PlacedMaps
from train.amgan_teacher import CUSPTeacher
from train.distributed import Dist

log = logging.getLogger("faceage.train")

IDENTITY_A, IDENTITY_STEPS = 0.98, 100
"""Mean attention A above which, for this many steps in a row, the trainer warns that G is the identity."""

PER_SIGN_TERMS = ("local", "sign", "edit", "tone")
"""Our four per-sign terms (``lambda_<term>`` of :class:`AMGANTrainConfig`), which ``per_sign_from`` delays."""

DELAYED_TERMS = {**{term: "per_sign_from" for term in PER_SIGN_TERMS}, "shift": "shift_from"}
"""Our delayed terms and the :class:`AMGANTrainConfig` field holding the step at which each switches on."""


JUDGES: Final = ("luma", "achromatic")
"""The measures :attr:`AMGANTrainConfig.judge` can name."""


@dataclass
class AMGANTrainConfig(AMGANTrainDefaults):
    """The ``[amgan]`` table of a training config: the paper's weights and rates plus our choices."""

    patch: int = 64  # training patch side (the paper: 128-512 on 1024 px; ours: 64 on 128 px)
    target_age_range: tuple = (0.0, 90.0)
    uniform_prob: float = 0.3  # share of age-only target maps
    image_weight: float = IMAGE_WEIGHT  # target sign = w U(0,1) + (1 - w) age (as the weak labels)
    lr_decay: bool = True  # linear to 0 at cfg.steps (Sec. 3.5)
    attention_bias_init: float | None = None  # ours: start A at sigmoid(b) (None: PyTorch's default init)
    # ours: the weight of L_Age in D's loss (its map regression on real patches); None: lambda_age, as the
    # paper's single lambda_Age. With 100, that term was 98% of D's gradient on our CPU run and the WGAN
    # critic's 1.5% (train/bench/amgan_loss_gradients.py): D's shared trunk learns the map, not realism.
    lambda_age_d: float | None = None
    lambda_loc_d: float | None = None  # ours: the same for L_Loc in D's loss; None: lambda_loc
    # ours: place each face's zones from its own landmarks (train.amgan_placement; the paper's per-face
    # boxes, Sec. 3.3) instead of the template's for every face
    face_placement: bool = False
    # ours: weight of amgan.colour_shift_loss(C, input) in G's loss, C the colour head's output of the edit
    # (0: off, the paper's objective). On C, not on the composite A I + (1 - A) C, which A = 1 would zero:
    # a run with it on the composite (weight 10) sent A to 1 everywhere within 350 steps
    lambda_colour: float = 0.0
    # ours: move each face (image and both maps together; the X/Y location maps stay) by up to this many
    # pixels and zoom it by up to this fraction. UTKFace crops are so tightly aligned that a zone always
    # sits at the same image rows, so without moves G can place zone effects by X/Y instead of by the map
    augment_shift: float = 0.0
    augment_scale: float = 0.0
    # ours: weight of amgan.zone_leak_loss: each step also edits one random sign of each target map
    # (train.amgan_maps.sample_sign_edits) and charges G for the change it makes beyond that sign's zone
    # and a margin of 2 map-blur sigmas (where the two maps agree). 0: off, the paper's objective
    lambda_local: float = 0.0
    # ours: weight of the sign term: the weak labels' measure (faceage.sign_scores: ridge energy over
    # luminance in each zone, through the training split's CDF) on G's fake patch, L1 against the texture
    # part of the target score, (s - (1 - image_weight) a) / image_weight clamped to [0, 1], for each zone
    # with at least ``sign_min_cover`` of its area in the patch. A fixed judge, like CUSP's age classifier:
    # D's 10 x 10 map estimate is the paper's only per-sign signal, and on our runs it left zones nearly
    # untouched. 0: off, the paper's objective
    lambda_sign: float = 0.0
    sign_min_cover: float = 0.5
    # ours: the measure that the sign and edit terms judge G's patches by. "luma": the labels' own (ridge
    # energy of the luminance). "achromatic": the smallest of the R, G and B ridge energies
    # (faceage.sign_scores.ridge_energy), through its own CDF over the training faces, so a line scores
    # only as far as it is dark in every channel: the shipped luma-judged G met its targets with short
    # saturated marks (a magenta line is dark in luminance) instead of grey wrinkles. The labels (targets)
    # stay luma; both CDFs are uniform over the real faces, so a target level means the same share of them
    judge: str = "luma"
    # ours: draw the edited sign of the edit pair (lambda_local, lambda_edit, lambda_tone) among the signs
    # whose zone has at least ``sign_min_cover`` of its area in the step's patch, each weighted by
    # 1 / P(covered) so all signs are drawn equally often (train.amgan_maps.covered_edit_weights; zones
    # of the template, before augment moves). False: uniform over all signs, and on 64-px patches of
    # 128-px faces about 2 edits in 3 fall where the patch shows too little of the zone to be charged
    edit_covered: bool = False
    # ours: weight of the edit-response term, the relative twin of the sign term: with the edited map of
    # lambda_local's pair (one sign k moved), the same measure in k's zone on G(I_p | A'_t,p) minus on the
    # fake, L1 against the change of k's texture part (U'_k - U_k), where k's zone covers at least
    # ``sign_min_cover`` of the patch. It asks a slider to move the texture of its own zone by its step and
    # asks for no absolute texture level (the sign term's absolute targets, at weight 25, were met by
    # striping the whole face). Needs the edit pair: draws it even when lambda_local is 0. 0: off
    lambda_edit: float = 0.0
    # ours: weight of amgan.edit_tone_loss on the same pair, in the edited sign's zone: a sign's edit may
    # change the zone's texture but not its tone (the labels' measure rises when a zone darkens, and the
    # edit term alone was met partly by dark blotches). Needs the edit pair, like lambda_edit. 0: off
    lambda_tone: float = 0.0
    # ours: inside the tone term, the weight of the full-resolution chroma change in the zone (thin
    # coloured marks); 0: the tone term charges the low-pass change only
    tone_chroma: float = 0.0
    # ours: the step at which the four per-sign terms (PER_SIGN_TERMS) switch on; before it G trains on the
    # paper's objective alone. On 2 CPU cores, 2 of 3 runs from scratch with the terms on from step 0 fell
    # into the identity (mean A above 0.99 by step 140 and 260, for good); the third drew stripes over
    # blurred faces (reconstruction L1 0.10). The shipped file's run had them from step 2,000. 0: from the start
    per_sign_from: int = 0
    # ours: weight of amgan.shift_consistency_loss: each step G also edits a second crop of each face, its
    # corner moved by up to ``shift_max`` pixels in each direction (same target map), and pays for the
    # difference between the two crops' attention masks and between their colour heads where they
    # overlap, ``shift_margin`` pixels from either crop's border. It asks G to draw what a pixel's face
    # and map call for, not what its place in the crop's grid does (the lines every 16 rows), and
    # full-image inference to match patch training. On A and C, not on the composite A I + (1 - A) C,
    # which A = 1 makes equal: with it on the composite (weight 100, from the shipped file) mean A rose
    # from 0.77 to 0.97 in 22 steps. 0: off
    lambda_shift: float = 0.0
    shift_max: int = 16
    shift_margin: int = 8
    # ours: the step at which lambda_shift switches on. From scratch with it on from step 0 (weight 10, tied,
    # seed 0), mean A fell from 0.11 to 0.01 by step 400 (the fully generative regime), where its twin
    # without it rose to 0.28 by step 560 and 0.8 by step 900. 0: from the start
    shift_from: int = 0
    # ours: the image-gradient scales of the cycle loss (amgan.cycle_loss: pixel L1 plus gradient L1 at this
    # many scales). A young target asks G to smooth the skin, and the cycle back to the face's own age cannot
    # restore texture it removed: the gradient terms charge that loss of texture on every scale, and the
    # shipped file made no young edit at all. 0: pixel L1 only
    cycle_scales: int = 3
    # ours: weight of the teacher term (train.amgan_teacher): G's edit under an age-only target map must
    # match a trained CUSP network's edit of the same face to that age (pixel + image-gradient L1 at
    # ``cycle_scales`` scales, on the patch). Distillation: the critic alone did not teach G a young or a
    # realistic old face on 2 CPU cores. ``teacher``: the CUSP weights ("" = the shipped file);
    # ``teacher_sigma``: its skip blur, the same everywhere (sigma_m = sigma_g). The term charges the
    # composite A I + (1 - A) C and the colour head C alone: where A is near 1 (the shipped file: 0.98) C gets
    # almost no gradient from the composite, and a run charging the composite only sent A to 1.000 within
    # 20 steps (the identity). 0: off, the paper's objective
    lambda_teacher: float = 0.0
    teacher: str = ""
    teacher_sigma: float = 4.5
    # ours: the teacher term on per-sign maps too: in one random zone k CUSP's edit to the age 100 s_k,
    # outside every zone (beyond the map blur's margin) its edit to a_t (train.amgan_teacher). False: age-only
    # maps only
    teacher_signs: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "AMGANTrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown [amgan] keys: {sorted(unknown)}; valid keys: {sorted(names)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def __post_init__(self):
        if self.judge not in JUDGES:
            raise ValueError(f"amgan.judge must be one of {', '.join(JUDGES)}, got {self.judge!r}")

    @property
    def achromatic_judge(self) -> bool:
        """Whether the sign and edit terms measure texture with the achromatic ridge energy (``judge``)."""
        return self.judge == "achromatic"

    def to_dict(self) -> dict:
        return asdict(self)


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k weights[k] * terms[k], in the order of ``terms``: a step's loss from its terms."""
    return sum(weights[k] * v for k, v in terms.items())


def requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class Draw(NamedTuple):
    """One step's random draws, this rank's rows (:meth:`AMGANTrainer._draw`)."""

    a_t: torch.Tensor  # target ages [n], normalised
    s_t: torch.Tensor  # target sign scores [n, Z]
    corners: torch.Tensor  # patch corners [n, 2] (top, left)
    moves: torch.Tensor | None  # augment moves, or None
    s_e: torch.Tensor | None  # the edit pair's scores (one sign moved), or None
    corners_q: torch.Tensor | None  # lambda_shift's second crops' corners, or None
    k_t: torch.Tensor | None  # the teacher's zone of each per-sign map (teacher_signs), or None


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
        edited = out[n:2 * n] if edited_map is not None else None
        other = (att[-n:], colour[-n:]) if shifted is not None else None
        cyc, att_cyc, _ = self.G(fake, source_map, x_map, y_map)
        return fake, att_fake, colour_fake, cyc, att_cyc, edited, other


class AMGANTrainer:
    """Holds G, its EMA copy, D and both optimisers; ``train_step(x, age, signs[, theta])`` per batch."""

    def __init__(self, cfg, device: torch.device, dist: Dist | None = None):
        self.cfg, self.device = cfg, device
        self.dist = dist or Dist(device=device)
        if cfg.augment_flip:
            raise ValueError("AMGAN needs augment_flip = false: the sign labels are per side of the face "
                             "and a horizontal flip would swap left and right")
        self.net_cfg = AMGANConfig.from_dict(cfg.net)
        self.t = AMGANTrainConfig.from_dict(cfg.amgan)
        self.resolution = int(cfg.net.get("resolution", 128))
        m = 2**self.net_cfg.n_down
        if self.t.patch % m or self.resolution % m or self.t.patch > self.resolution:
            raise ValueError(f"patch ({self.t.patch}) and resolution ({self.resolution}) must be multiples of "
                             f"{m} (2**n_down), with patch <= resolution")
        torch.manual_seed(cfg.seed)
        self.G = AMGANGenerator(self.net_cfg).to(device)
        if self.t.attention_bias_init is not None:  # a low start makes the colour head C learn early
            with torch.no_grad():
                self.G.attention_head.bias.fill_(self.t.attention_bias_init)
        self.D = AMGANDiscriminator(self.net_cfg).to(device)
        self.G_ema = amgan.make_ema(self.G)
        self.G_step = self.dist.wrap(CycleStep(self.G))
        self.D_ddp = self.dist.wrap(self.D)
        self.opt_G, self.opt_D = amgan.make_optimizers(self.G, self.D, self.t)
        self.basis = MapBasis(self.resolution).to(device)
        c = self.net_cfg.context  # the location maps of the whole face padded for G's context margin
        self.location = location_maps(self.resolution, self.resolution, c).to(device)  # [2, S + 2c, S + 2c]
        self.zones = template_zone_masks(self.resolution).to(device)  # [Z, S, S], the labels' zones
        self.calibration: SignCalibration | None = None  # the labels' CDF; train.train sets it from the data
        self.cover = cover_table(self.zones.cpu(), self.t.patch) if self.t.edit_covered else None
        self.placed = PlacedMaps(self.resolution).to(device) if self.t.face_placement else None
        self.teacher = (CUSPTeacher(self.t.teacher or None, self.t.teacher_sigma, device, self.resolution)
                        if self.t.lambda_teacher else None)
        self.beyond_zones = None  # teacher_signs: [1, S, S], 1 beyond every zone and its blur margin
        if self.teacher is not None and self.t.teacher_signs:
            m = self.basis.blur_margin
            self.beyond_zones = 1.0 - torch.nn.functional.max_pool2d(self.zones.amax(0)[None, None], 2 * m + 1,
                                                                     stride=1, padding=m)[0]
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
        moves = None
        if self.t.augment_shift or self.t.augment_scale:
            moves = self.dist.local(sample_moves(self.rng, n, self.resolution, self.t.augment_shift, self.t.augment_scale))
        paired = self._lam("local") or self._lam("edit") or self._lam("tone")
        s_e = None
        if paired:
            w = covered_edit_weights(self.cover, corners, self.t.sign_min_cover) if self.t.edit_covered else None
            s_e = self.dist.local(sample_sign_edits(self.rng, s_t, w))
        corners_q = None
        if self._lam("shift"):
            corners_q = self.dist.local(shift_corners(self.rng, corners, self.resolution, self.t.patch,
                                                      self.t.shift_max))
        k_t = None
        if self.teacher is not None and self.t.teacher_signs:
            k_t = self.dist.local(torch.randint(0, s_t.shape[1], (n,), generator=self.rng))
        return Draw(self.dist.local(a_t), self.dist.local(s_t), self.dist.local(corners), moves, s_e, corners_q,
                    k_t)

    def prepare(self, x, age, signs, theta=None) -> dict[str, torch.Tensor]:
        """One step's patches and targets: draws targets and corners, maps, crops (Sec. 3.1).

        ``theta`` [N, 2, 3]: each face's zone placement (:mod:`train.amgan_placement`); None: the template's.

        -> ``I_p`` (image patches), ``As_p`` / ``At_p`` (own / target aging-map patches), ``xy`` (patch
        centres, D_Loc's target) and G's input windows, the same crops with G's context margin c around
        them (:attr:`AMGANConfig.context`; c = 0: the patches themselves): ``I_g``, ``As_g``, ``At_g``, ``L_g``
        (location maps, x then y); with ``lambda_local``, also ``Ae_g`` (G's window of the target map with
        one sign edited) and ``out_p`` (1 beyond that edit's zone and margin);
        with ``lambda_sign``, ``Z_p`` (the zone masks' patches), ``U_t`` and ``Z_valid`` (see ``lambda_sign``);
        with ``lambda_edit`` or ``lambda_tone``, ``Z_p``, ``Z_valid``, ``k_e`` (the edited sign) and, with
        ``lambda_edit``, ``dU_e`` (its texture part's change); with ``lambda_shift``, ``I_q``, ``At_q``, ``L_q``
        (G's window of the second crop) and ``offset_q`` (its corner minus the first's); with
        ``lambda_teacher``, ``T_p`` and ``T_w``, the patches of the teacher's targets and their pixel weights
        (:meth:`_teacher_targets`).
        """
        P, S = self.t.patch, self.resolution
        a_t, s_t, corners, moves, s_e, corners_q, k_t = self._draw(len(x))
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
        if self.teacher is not None:  # CUSP's edits as targets (train.amgan_teacher)
            extra["T_p"], extra["T_w"] = self._teacher_targets(x.float(), a_t.to(dev), s_t.to(dev), k_t)
        if s_e is not None:
            G_in["Ae_g"] = A_e = make(a_t.to(dev), s_e.to(dev))
            extra["out_p"] = outside_edit(A_t, A_e, self.basis.blur_margin)
        if moves is not None:  # the face and its maps move together; the location maps do not
            G_in, extra = ({k: move_batch(v, moves) for k, v in d.items()} for d in (G_in, extra))
        # G's input windows: the patches with G's context margin c around them (AMGANConfig.context)
        c = self.net_cfg.context
        G_in = dict(zip(G_in, pad_context(c, *G_in.values())))
        G_in["L_g"] = self.location[None].expand(len(x), -1, -1, -1)
        b = {k: crop_batch(v, corners, P + 2 * c) for k, v in G_in.items()}
        b.update(zip(("I_p", "As_p", "At_p"), crop_context(c, b["I_g"], b["As_g"], b["At_g"])),  # the patches
                 xy=patch_centres(corners, P, S).to(dev), **{k: crop_batch(v, corners, P) for k, v in extra.items()})
        if corners_q is not None:  # the second crop of lambda_shift
            b.update({q: crop_batch(G_in[g], corners_q, P + 2 * c) for q, g in
                      (("I_q", "I_g"), ("At_q", "At_g"), ("L_q", "L_g"))}, offset_q=corners_q - corners)
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

    def _teacher_targets(self, x, a_t, s_t, k_t) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher term's target images [N, 3, S, S] and pixel weights [N, 1, S, S] for full faces:
        CUSP's edit to a_t with weight 1 where the target map is age-only; with ``teacher_signs``, on the
        other maps its edit to 100 s_k in zone k and to a_t outside every zone's margin, 0 elsewhere. The zones
        are the template's, as for the sign terms (UTKFace crops are aligned), also with ``face_placement``."""
        target, weight = x.clone(), torch.zeros_like(x[:, :1])
        uniform = (s_t == a_t[:, None]).all(1)
        if uniform.any():
            target[uniform] = self.teacher(x[uniform], a_t[uniform])[0]
            weight[uniform] = 1.0
        signed = ~uniform if k_t is not None else torch.zeros_like(uniform)
        if signed.any():
            k = k_t.to(x.device)[signed]
            rows = torch.arange(len(x), device=x.device)[signed]
            outside_age, zone_age = self.teacher(x[signed], a_t[signed], s_t[rows, k])
            zone = self.zones[k][:, None]  # [n, 1, S, S]
            outside = self.beyond_zones.expand_as(zone)
            target[signed] = zone * zone_age + (1.0 - zone) * outside_age
            weight[signed] = torch.maximum(zone, outside)
        return target, weight

    def generator_weights(self) -> dict[str, float]:
        """The weight of each of :meth:`generator_terms` in G's loss ("att" holds its own lambdas)."""
        t = self.t
        return {"adv": 1.0, "cyc": t.lambda_cyc, "age": t.lambda_age, "loc": t.lambda_loc, "att": 1.0,
                "colour": t.lambda_colour, "teacher": t.lambda_teacher, **{k: self._lam(k) for k in DELAYED_TERMS}}

    def generator_terms(self, b: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """G's loss terms, unweighted (Eq. 1-4), on the batch ``b`` of :meth:`prepare`; and the outputs
        (``fake``, ``att_fake``, ``cyc``, ``att_cyc``). "att" is the attention regulariser of both masks
        with ``lambda_mask`` and ``lambda_tv`` inside it (its weight in :meth:`generator_weights` is 1)."""
        t, I_p, At_p, L_g = self.t, b["I_p"], b["At_p"], b["L_g"]
        shifted = (b["I_q"], b["At_q"], b["L_q"][:, :1], b["L_q"][:, 1:]) if "I_q" in b else None
        outs = self.G_step(b["I_g"], b["At_g"], b["As_g"], L_g[:, :1], L_g[:, 1:], b.get("Ae_g"), shifted)
        c = self.net_cfg.context  # the centres of G's windows: the patches
        fake, att_fake, colour_fake, cyc, att_cyc, edited = crop_context(c, *outs[:-1])
        other = None if outs[-1] is None else crop_context(c, *outs[-1])
        critic_f, loc_f, age_f = self.D(fake)
        terms = {"adv": amgan.generator_adv_loss(critic_f),
                 "cyc": amgan.cycle_loss(cyc, I_p, t.cycle_scales),
                 "age": amgan.age_loss(age_f, At_p),
                 "loc": amgan.loc_loss(loc_f, b["xy"]),
                 "att": (amgan.attention_loss(att_fake, t.lambda_mask, t.lambda_tv)
                         + amgan.attention_loss(att_cyc, t.lambda_mask, t.lambda_tv)),
                 "colour": amgan.colour_shift_loss(colour_fake, I_p),
                 "teacher": (amgan.cycle_loss(fake, b["T_p"], t.cycle_scales, b["T_w"])
                             + amgan.cycle_loss(colour_fake, b["T_p"], t.cycle_scales, b["T_w"])
                             if "T_w" in b else fake.new_zeros(())),
                 "local": (fake.new_zeros(()) if edited is None
                           else amgan.zone_leak_loss(edited, fake, b["out_p"])),
                 "shift": (fake.new_zeros(()) if other is None
                           else amgan.shift_consistency_loss(att_fake, other[0], b["offset_q"], t.shift_margin)
                           + amgan.shift_consistency_loss(colour_fake, other[1], b["offset_q"], t.shift_margin)),
                 "sign": fake.new_zeros(()), "edit": fake.new_zeros(()), "tone": fake.new_zeros(())}
        if "k_e" in b:
            rows = torch.arange(len(fake), device=fake.device)
            terms["tone"] = amgan.edit_tone_loss(edited, fake, b["Z_p"][rows, b["k_e"]][:, None],
                                                 chroma_weight=t.tone_chroma)
        if "U_t" in b or "dU_e" in b:
            tex_fake = self._texture(fake, b)
            if "U_t" in b:
                terms["sign"] = amgan.masked_mean((tex_fake - b["U_t"]).abs(), b["Z_valid"])
            if "dU_e" in b:
                k = b["k_e"][:, None]
                moved = (self._texture(edited, b) - tex_fake).gather(1, k)[:, 0]
                terms["edit"] = amgan.masked_mean((moved - b["dU_e"]).abs(), b["Z_valid"].gather(1, k)[:, 0])
        return terms, {"fake": fake, "att_fake": att_fake, "cyc": cyc, "att_cyc": att_cyc}

    def _texture(self, images: torch.Tensor, b: dict) -> torch.Tensor:
        """[n, Z]: the weak labels' texture CDF of ``images`` in each zone patch of ``b`` (differentiable)."""
        if self.calibration is None:
            raise ValueError("amgan.lambda_sign and amgan.lambda_edit need the sign labels' calibration: train "
                             "through train.train (it sets trainer.calibration from the data) or set it yourself")
        return self.calibration.soft_cdf(masked_measures(images, b["Z_p"], self.t.achromatic_judge))

    def discriminator_weights(self) -> dict[str, float]:
        """The weight of each of :meth:`discriminator_terms` in D's loss (the GP's is ``lambda_gp``)."""
        t = self.t
        age = t.lambda_age if t.lambda_age_d is None else t.lambda_age_d
        loc = t.lambda_loc if t.lambda_loc_d is None else t.lambda_loc_d
        return {"wgan": 1.0, "age": age, "loc": loc}

    def discriminator_terms(self, b: dict, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss terms, unweighted, but for the gradient penalty (:meth:`_gradient_penalty_grads`)."""
        I_p = b["I_p"]
        critic, loc_pred, age_pred = self.D_ddp(torch.cat([I_p, fake]))
        critic_r, critic_f = critic.chunk(2)
        return {"wgan": amgan.critic_loss(critic_r, critic_f),
                "age": amgan.age_loss(age_pred[:len(I_p)], b["As_p"]),
                "loc": amgan.loc_loss(loc_pred[:len(I_p)], b["xy"])}

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
        amgan.ema_update(self.G_ema, self.G, self._ema_decay())

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
        return {"G/adv": g["adv"].item(), "G/cyc": g["cyc"].item(), "G/age": g["age"].item(),
                "G/loc": g["loc"].item(), "G/colour": g["colour"].item(), "G/local": g["local"].item(),
                "G/shift": g["shift"].item(), "G/sign": g["sign"].item(), "G/edit": g["edit"].item(),
                "G/tone": g["tone"].item(), "G/teacher": g["teacher"].item(),
                "G/attention": out["att_fake"].mean().item(), "G/total": loss_G.item(),
                "D/wgan": d["wgan"].item(), "D/gp": L_gp, "D/age": d["age"].item(), "D/loc": d["loc"].item(),
                "lr_scale": lr_f}

    def _watch_identity(self, mean_a: float) -> None:
        """Warn once when G has kept more than :data:`IDENTITY_A` of its input for :data:`IDENTITY_STEPS`
        steps in a row: it has fallen into the identity (A saturated, so C gets no gradient) and the run
        will not leave it (2 of 3 CPU runs with the per-sign terms from step 0: ``per_sign_from``)."""
        self._identity_run = self._identity_run + 1 if mean_a > IDENTITY_A else 0
        if self._identity_run == IDENTITY_STEPS and self.dist.is_main:
            log.warning("step %d: G has kept more than %.0f%% of its input (attention A) for %d steps: it has "
                        "most likely become the identity and will not recover. Stop the run and restart it "
                        "with amgan.per_sign_from (the per-sign terms later) or another seed",
                        self.step, 100 * IDENTITY_A, IDENTITY_STEPS)

    def _gradient_penalty_grads(self, real, fake) -> float:
        """Add lambda_gp * GP's gradients (unwrapped D, averaged over ranks) to D's DDP-averaged ones."""
        kept = [None if p.grad is None else p.grad.clone() for p in self.D.parameters()]
        self.opt_D.zero_grad(set_to_none=True)
        eps = self.dist.local(torch.rand(len(real) * self.dist.world, generator=self.rng))
        gp = amgan.gradient_penalty(self.D, real, fake, eps)
        (self.t.lambda_gp * gp).backward()
        self.dist.average_gradients(self.D)
        for p, g in zip(self.D.parameters(), kept):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        return gp.item()

    def _ema_decay(self) -> float:
        return 0.5 ** (self.cfg.batch / max(self.cfg.ema_half_life_images, 1e-8))

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, x, ages=(10, 40, 70), raise_sign: str = "forehead") -> torch.Tensor:
        """Grid rows per face (full image, G_ema): input, uniform maps at ``ages``, one sign raised, A."""
        from faceage.amgan.maps import SIGNS

        x = x.to(self.device)
        n = len(x)
        rows = [x]
        zeros = torch.zeros(n, len(SIGNS), device=self.device)
        att = None
        for a in ages:
            an = torch.full((n,), normalize_age(float(a)), device=self.device)
            out, att, _ = amgan.generate(self.G_ema, x, self.basis.maps(an, zeros + an[:, None]))
            rows.append(out)
        a_mid = torch.full((n,), normalize_age(30.0), device=self.device)
        s = zeros + a_mid[:, None]
        s[:, SIGNS.index(raise_sign)] = 1.0
        rows.append(amgan.generate(self.G_ema, x, self.basis.maps(a_mid, s))[0])
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
