"""One CUSP training step (Sec. 3.3, Eq. 3-5): generator step, discriminator step, lazy R1, EMA.

Per step, with a batch (x, a_i) and sampled target ages a_t and sigmas (sigma_m, sigma_g):
    M      = CUSP mask of x (guided backprop through the frozen classifier C)
    x_rec  = T(x, a_i)            L_r  = |x_rec - x|                         (Eq. 3)
    x_fake = T(x, a_t)            L_D  = softplus(-D(x_fake, a_t)),  L_C = MV(C(x_fake), a_t)
    x_cyc  = T(x_fake, a_i)       L_cy = |x_cyc - x|                         (Eq. 4)
    G loss = lambda_r L_r + lambda_C L_C + lambda_D L_D + lambda_cy L_cy       (Eq. 5)
then D on (x, a_i) vs (x_fake.detach(), a_t), with R1 every ``r1_every`` steps.
x_rec and x_fake share one encoder pass (the encoders see the same x).

Choice (paper vs release): MV is the mean-variance loss on C's logits, one softmax, as the paper and
Pan et al. define it; the release feeds it C's softmax, i.e. softmax twice, and its lambda_C (0.06 in
the paper) was tuned on that far weaker push. Ours is 43-54x stronger on the image
(``train/bench/age_loss_gradient.py``), so our default lambda_C is 0.006 (:class:`CUSPTrainConfig`).

Multi-process (torchrun, see ``train.distributed``): x is this rank's part of the global batch. T's
work of the G step runs as ONE forward of a DDP-wrapped :class:`GeneratorStep`, D's step through a
DDP-wrapped D (real and fake forwards, one backward), so DDP averages their gradients. The lazy R1
step needs a double backward (``autograd.grad(create_graph=True)``): it runs on the UNWRAPPED D and
its gradients are then averaged with a manual all-reduce (``Dist.average_gradients``), which is
exactly the single-process gradient of the global batch's mean penalty. Target ages and the
generator noise are drawn for the global batch on every rank and sliced (``Dist.local``), so every
rank consumes its RNGs identically, the weights (hence the EMA) stay identical on all ranks, and a
W-process run follows the single-process run of the same global batch up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from faceage.age.classifier import AGE_WEIGHTS
from faceage.checkpoint import load_training_state, training_state
from faceage.config import from_dict
from faceage.cusp.mask import blur_skip, cusp_mask, sample_sigmas
from faceage.cusp.model import CUSPGenerator, Discriminator
from faceage.data.ages import age_to_group
from train.augment import photo_augment
from train.cusp import losses
from train.distributed import Dist
from train.ema import ema_decay, ema_update, make_ema, requires_grad


@dataclass
class CUSPTrainConfig:
    """The ``[cusp]`` table of a training config: CUSP's loss weights and optimiser (paper, Sec. 4,
    implementation details, unless marked ours)."""

    lr: float = 0.0025  # Adam, beta1 = 0, beta2 = 0.99 (paper)
    betas: tuple[float, float] = (0.0, 0.99)
    lambda_r: float = 10.0  # L_r weight (paper)
    # L_C weight. Paper: 0.06 (release: 0.1), tuned on the released loss, which applies softmax twice; our
    # mean-variance loss on C's logits (one softmax, as defined) pushes the image 43-54x harder
    # (train/bench/age_loss_gradient.py), and at 0.06 G paints speckle that fools C. 0.006 ages with folds.
    lambda_C: float = 0.006
    lambda_D: float = 1.0  # L_D weight (paper)
    lambda_cy: float = 10.0  # L_cy weight (paper)
    r1_gamma: float = 0.5  # R1 weight (release: 0.56 at 224-256 px)
    r1_every: int = 16  # lazy R1 interval (StyleGAN2)
    target_age_range: tuple[float, float] = (0.0, 90.0)  # target ages a_t are sampled uniformly here
    sigma_zero_prob: float = 0.25  # probability that a training sigma is exactly 0 (ours)
    classifier: str = "assets/age_classifier_C.safetensors"  # the frozen age classifier C (mask and L_C)
    # ours: the masks of the training images computed once, at the start (train.cusp.mask_cache; needs a
    # packed split, held on the device); the step is the same, without its guided-backprop pass over x
    cache_masks: bool = False
    # ours: the chance that a training image goes through the photo-like chain of train.augment (0 = off)
    photo_augment: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> CUSPTrainConfig:
        """From a ``[cusp]`` table; unknown keys refused."""
        return from_dict(cls, d, where="[cusp]")


class GeneratorStep(torch.nn.Module):
    """T's part of one generator step as a single ``forward`` (what DDP needs to sync T's gradients).

    Returns ``(x_rec, x_fake, x_cyc)``: x_rec and x_fake decoded together from one encoder pass of x,
    and x_cyc = T(x_fake, a_i) with the mask of x_fake (``mask_fn``, through the frozen C).
    """

    def __init__(self, T: CUSPGenerator, mask_fn):
        super().__init__()
        self.T = T
        self.mask_fn = mask_fn

    def forward(self, x, M, age, a_t, sigma_m: float, sigma_g: float, noise2, noise1):
        c, f_c, s = self.T.encode(x)
        skip = blur_skip(f_c, M, sigma_m, sigma_g)
        both = self.T.decode(
            c.repeat(2, 1, 1, 1), skip.repeat(2, 1, 1, 1), s.repeat(2, 1), torch.cat([age, a_t]), noise=noise2
        )
        x_rec, x_fake = both.float().chunk(2)
        M_fake = self.mask_fn(x_fake.detach())
        x_cyc = self.T(x_fake, age, lambda f: blur_skip(f, M_fake, sigma_m, sigma_g), noise=noise1).float()
        return x_rec, x_fake, x_cyc


class CUSPTrainer:
    """Holds T (= E_s, E_c, E_a, G), its EMA copy, D, C and both optimisers.

    ``T``, ``D`` and ``T_ema`` are the plain modules (checkpoints, EMA, samples); ``G_step`` and ``D_ddp``
    are what the training step calls: DDP wrappers under torchrun, the plain modules otherwise.
    """

    def __init__(self, cfg, classifier, device: torch.device, dist: Dist | None = None):
        """``cfg``: a :class:`train.config.TrainConfig` of a CUSP run (``cfg.net``, ``cfg.cusp``)."""
        self.cfg, self.t, self.device = cfg, cfg.cusp, device
        self.dist = dist or Dist(device=device)
        self.net_cfg = cfg.net
        self.resolution = self.net_cfg.resolution
        torch.manual_seed(cfg.seed)
        self.T = CUSPGenerator(self.net_cfg).to(device)
        self.D = Discriminator(self.net_cfg).to(device)
        self.T_ema = make_ema(self.T)
        self.C = classifier.to(device).eval()
        requires_grad(self.C, False)
        self.class_ages = torch.tensor(AGE_WEIGHTS, device=device)
        if cfg.channels_last:
            for m in (self.T, self.D, self.T_ema):
                m.to(memory_format=torch.channels_last)
        self.G_step = self.dist.wrap(GeneratorStep(self.T, self.mask))
        self.D_ddp = self.dist.wrap(self.D)
        t = self.t
        self.opt_G = torch.optim.Adam(self.T.parameters(), lr=t.lr, betas=tuple(t.betas))
        c = t.r1_every / (t.r1_every + 1)  # lazy-regularisation correction (StyleGAN2, App. B)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.lr * c, betas=tuple(b**c for b in t.betas))
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)  # ages and sigmas
        self.step = 0

    # ------------------------------------------------------------------------------------------
    def _classify(self, x, guided=False):
        return self.C.from_canonical(x.float(), guided=guided)

    def mask(self, x):
        """The CUSP mask M of images ``x`` through the frozen C (what :class:`MaskCache` stores)."""
        return cusp_mask(self._classify, x.float()).detach()

    def _autocast(self):
        on = self.cfg.amp == "bf16" and self.device.type == "cuda"
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=on)

    def sample_targets(self, n: int) -> torch.Tensor:
        lo, hi = self.t.target_age_range
        return lo + (hi - lo) * torch.rand(n, generator=self.rng)

    def _noise(self, chunks: int):
        """Generator noise drawn for ``chunks`` stacked global batches; this rank keeps its rows."""
        world = self.dist.world

        def draw(n, h, w, device, dtype):
            full = torch.randn(n * world, 1, h, w, device=device, dtype=dtype)
            return self.dist.local(full, chunks)

        return draw

    def train_step(self, x, age, group, M=None) -> dict[str, torch.Tensor]:
        """One G step and one D step on a batch (this rank's part of it); returns the loss values as
        0-d tensors (read them when logging: no host sync per step).

        ``M``: the masks of ``x`` when cached (:class:`train.cusp.mask_cache.MaskCache`), else computed here.
        With ``photo_augment`` the batch goes through :func:`train.augment.photo_augment` first (a cached mask
        is warped with its image: the mask of the face, not of its noise).
        """
        cfg, t = self.cfg, self.t
        dev = self.device
        x, age, group = x.to(dev, non_blocking=True), age.to(dev, non_blocking=True), group.to(dev, non_blocking=True)
        x, M = photo_augment(x, M, t.photo_augment, cfg.seed, self.step)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        a_t = self.dist.local(self.sample_targets(len(x) * self.dist.world))
        g_t = torch.tensor([age_to_group(a) for a in a_t.tolist()]).to(dev, non_blocking=True)
        a_t = a_t.to(dev, non_blocking=True)
        sigma_m, sigma_g = sample_sigmas(self.rng, t.sigma_zero_prob)
        M = self.mask(x) if M is None else M

        # --- generator step -------------------------------------------------------------------
        requires_grad(self.T, True)
        requires_grad(self.D, False)
        with self._autocast():
            x_rec, x_fake, x_cyc = self.G_step(x, M, age, a_t, sigma_m, sigma_g, self._noise(2), self._noise(1))
            L_r = losses.l1(x_rec, x)
            L_cy = losses.l1(x_cyc, x)
            L_D = losses.g_nonsaturating(self.D(x_fake, g_t).float())
        L_C = losses.mean_variance_loss(self._classify(x_fake), a_t, self.class_ages)
        loss_G = t.lambda_r * L_r + t.lambda_C * L_C + t.lambda_D * L_D + t.lambda_cy * L_cy
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self._update_ema()

        # --- discriminator step ---------------------------------------------------------------
        requires_grad(self.T, False)
        requires_grad(self.D, True)
        with self._autocast():
            loss_D = losses.d_logistic(self.D_ddp(x, group).float(), self.D_ddp(x_fake.detach(), g_t).float())
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        stats = {
            "G/rec": L_r,
            "G/cyc": L_cy,
            "G/adv": L_D,
            "G/age_C": L_C,
            "G/total": loss_G,
            "D/logistic": loss_D,
            "sigma/m": torch.tensor(sigma_m),
            "sigma/g": torch.tensor(sigma_g),
        }
        if self.step % t.r1_every == 0:
            stats["D/r1"] = self._r1_step(x, group)
        self.step += 1
        return {k: v.detach() for k, v in stats.items()}

    def _r1_step(self, x, group) -> torch.Tensor:
        """Lazy R1 on the unwrapped D (double backward), gradients averaged over ranks by hand."""
        real = x.detach().requires_grad_(True)
        penalty = losses.r1_penalty(self.D(real, group).float(), real)
        self.opt_D.zero_grad(set_to_none=True)
        (penalty * self.t.r1_gamma / 2 * self.t.r1_every).backward()
        self.dist.average_gradients(self.D)
        self.opt_D.step()
        return penalty

    def _update_ema(self):
        ema_update(self.T_ema, self.T, ema_decay(self.cfg.batch, self.cfg.ema_half_life_images))

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, x, ages=(10, 30, 50, 70), sigmas=((0.0, 0.0), (8.0, 4.5))) -> torch.Tensor:
        """Grid rows: input, mask M, then T_ema(x, age) for each sigma pair and age (fixed noise)."""
        x = x.to(self.device)
        M = self.mask(x)
        c, f_c, s = self.T_ema.encode(x)
        rows = [x, M.expand_as(x) * 2 - 1]
        for sm, sg in sigmas:
            skip = blur_skip(f_c, M, sm, sg)
            for a in ages:
                rows.append(self.T_ema.decode(c, skip, s, torch.full((len(x),), float(a), device=self.device)))
        return torch.stack(rows, dim=1).clamp(-1, 1).cpu()  # [N, rows, 3, S, S]

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resume needs: tensors + JSON-able info."""
        return training_state(self._modules(), self._optimizers(), self.rng)

    def load_state(self, tensors, info, step: int) -> None:
        load_training_state(self._modules(), self._optimizers(), self.rng, tensors, info)
        self.step = step

    def generators(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(trained, EMA) copies of the aging network: what ``init_weights`` fills."""
        return self.T, self.T_ema

    def _modules(self) -> dict:
        return {"T": self.T, "T_ema": self.T_ema, "D": self.D}

    def _optimizers(self) -> dict:
        return {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The shipped weights: the EMA aging network only (E_s, E_c, E_a, G; not D)."""
        return dict(self.T_ema.state_dict())
