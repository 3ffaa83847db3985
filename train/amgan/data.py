"""AMGAN's training items: a face, its age, its weak sign labels (:mod:`train.amgan.sign_scores`) and, with
``placement``, where its zones go (:mod:`train.amgan.placement`)."""

from __future__ import annotations

import logging

import torch

from train.amgan.sign_scores import SignCalibration, compute_labels, labels_path, packed_labels

log = logging.getLogger("faceage.train")


class SignLabelledFaces(torch.utils.data.Dataset):
    """``(image [3, S, S], age, signs [Z])`` for every face of ``base`` (whose items are (image, age, _)),
    with ``theta [2, 3]`` (the face's zone placement) appended when ``theta`` is given."""

    def __init__(
        self, base, scores: torch.Tensor, theta: torch.Tensor | None = None, calibration: SignCalibration | None = None
    ):
        for what, t in (("sign labels", scores), ("zone placements", theta)):
            if t is not None and len(t) != len(base):
                raise ValueError(f"{len(t)} {what} for {len(base)} faces: recompute them")
        self.base, self.scores = base, scores.float()
        self.theta = None if theta is None else theta.float()
        self.size = getattr(base, "size", None)
        self.calibration = calibration  # the texture CDF of AMGAN's judge (the achromatic measure's)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, age, _ = self.base[i]
        if self.theta is None:
            return image, age, self.scores[i]
        return image, age, self.scores[i], self.theta[i]


def with_sign_labels(base, placement: bool = False) -> SignLabelledFaces:
    """Attach labels: cached beside a packed split (computed on first use), computed in memory otherwise.

    ``placement``: attach each face's zone placement too (cached beside a packed split; faces that are
    not a packed split, e.g. the synthetic test faces, have no landmarks and keep the template's).
    The items' ``calibration`` is that of the achromatic measure over the same faces (the judge of AMGAN's
    sign and edit terms), not the labels' own luminance measure."""
    if hasattr(base, "path") and hasattr(base, "images"):
        labels = packed_labels(base, labels_path(base.path))
        log.info("sign labels: %s (%d faces)", labels_path(base.path), len(base))
        knots = packed_labels(base, labels_path(base.path, True), achromatic=True)["knots"]
        log.info("achromatic judge's calibration: %s", labels_path(base.path, True))
        theta = None
        if placement:
            from train.amgan.placement import packed_placement, placement_path

            theta = packed_placement(base)
            log.info("zone placement: %s", placement_path(base.path))
        return SignLabelledFaces(base, labels["scores"], theta, SignCalibration(knots))
    items = [base[i] for i in range(len(base))]
    images = torch.stack([it[0] for it in items])
    ages = torch.tensor([float(it[1]) for it in items])
    scores = compute_labels(images, ages)[0]
    cal = compute_labels(images, ages, achromatic=True)[2]
    theta = None
    if placement:
        from train.amgan.placement import IDENTITY

        theta = IDENTITY.expand(len(base), 2, 3).clone()
    return SignLabelledFaces(base, scores, theta, cal)
