"""Ours, not the paper's: a trained CUSP network as AMGAN's teacher for age-only target maps.

AgingMapGAN learns what age looks like from its critic alone (Eq. 1-4), which takes long GPU runs. On
2 CPU cores every critic and fixed judge we tried rewarded thin lines (``assets/amgan_utkface128.md``),
and G never made a face younger. With ``amgan.lambda_teacher`` > 0, each step also asks G's edit of a
face under an **age-only** map (every sign = the target age a_t, Sec. 5.4; ``uniform_prob`` of the
targets) to match CUSP's edit of the same face to a_t, pixel and image-gradient L1 on the patch
(:func:`faceage.amgan.model.cycle_loss` as a distance). This is distillation of one image-to-image
model into another (as StyleGAN2 edits were distilled into pix2pixHD by Viazovetskyi et al., ECCV 2020):
the uniform age edit becomes CUSP's. With ``teacher_signs`` the other maps get a regional target too: in
one random sign zone k, CUSP's edit to the age 100 s_k (a zone scored s looks as it would at that age),
outside every zone (beyond a margin) CUSP's edit to a_t; the other zones and the margins are not charged.

CUSP's skip connection is blurred with one sigma everywhere (``teacher_sigma``, sigma_m = sigma_g,
Eq. 2), so its mask (guided backpropagation through the classifier) is not needed. The teacher runs on
the whole face, before any augment move, and its output moves and is cropped with the face.
"""

from __future__ import annotations

from pathlib import Path

import torch

from faceage.cusp.mask import blur_skip, check_sigma
from faceage.data.ages import denormalize_age


class CUSPTeacher:
    """``teacher(x, a[, a2 ...])`` -> CUSP's edits of faces ``x`` [N, 3, S, S] in [-1, 1] to normalised ages."""

    def __init__(self, weights: str | Path, sigma: float, device: torch.device, resolution: int):
        from faceage.cusp.editor import load_network

        self.T = load_network(weights)[0].to(device).eval()  # the network alone: no classifier, no mask
        for p in self.T.parameters():
            p.requires_grad_(False)
        if self.T.cfg.resolution != resolution:
            raise ValueError(f"amgan.teacher {weights} is a {self.T.cfg.resolution}-px CUSP network; AMGAN "
                             f"trains at {resolution} px: give a CUSP file of the same resolution")
        self.sigma = check_sigma("amgan.teacher_sigma", sigma)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, *ages: torch.Tensor) -> list[torch.Tensor]:
        """CUSP's edits of ``x`` to each of ``ages`` (normalised, [N] each), sharing one encoding."""
        c, f_c, s = self.T.encode(x)
        everywhere = torch.ones(len(x), 1, *x.shape[-2:], device=x.device)
        skip = blur_skip(f_c, everywhere, self.sigma, self.sigma)
        return [self.T.decode(c, skip, s, denormalize_age(a.float())).clamp(-1.0, 1.0) for a in ages]
