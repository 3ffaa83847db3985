"""AMGAN's training items: a face, its age and its weak sign labels (:mod:`faceage.sign_scores`)."""

from __future__ import annotations

import logging

import torch

from faceage.sign_scores import compute_labels, labels_path, packed_labels

log = logging.getLogger("faceage.train")


class SignLabelledFaces(torch.utils.data.Dataset):
    """``(image [3, S, S], age, signs [Z])`` for every face of ``base`` (whose items are (image, age, _))."""

    def __init__(self, base, scores: torch.Tensor):
        if len(scores) != len(base):
            raise ValueError(f"{len(scores)} sign labels for {len(base)} faces: recompute the labels")
        self.base, self.scores = base, scores.float()
        self.size = getattr(base, "size", None)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, age, _ = self.base[i]
        return image, age, self.scores[i]


def with_sign_labels(base) -> SignLabelledFaces:
    """Attach labels: cached beside a packed split (computed on first use), computed in memory otherwise."""
    if hasattr(base, "path") and hasattr(base, "images"):
        labels = packed_labels(base, labels_path(base.path))
        log.info("sign labels: %s (%d faces)", labels_path(base.path), len(base))
        return SignLabelledFaces(base, labels["scores"])
    items = [base[i] for i in range(len(base))]
    images = torch.stack([it[0] for it in items])
    ages = torch.tensor([float(it[1]) for it in items])
    scores, _, _ = compute_labels(images, ages)
    return SignLabelledFaces(base, scores)
