"""The evaluation age estimator A: an age regressor that CUSP never sees in training.

CUSP's classifier C (:mod:`faceage.age.classifier`) drives both the mask M and the
age loss L_C, so an edit can fool C without looking older to anyone else: C cannot judge
the edits. The CUSP paper (Sec. 4) judges with a separate estimator; faceage trains its own
(:mod:`train.age.train_estimator`) on the UTKFace training split, with an architecture unlike C's:

    C: dlib ResNet-10, 64-px dlib face chips (5-point alignment), frozen affine "batch norm", 81 age bins
    A: plain VGG-style CNN with live batch norm, the whole canonical 200x200 UTKFace frame resized
       to 64 px, 101 age bins (0..100 years), trained with label-distribution learning

Network (input ``[N,3,64,64]`` in ``[-1,1]``, any canonical-frame side is resized to 64):

    stem   conv 3x3/2 3->32, BN, ReLU                                  32 @ 32x32
    stages (conv 3x3, BN, ReLU) x 2 per width, 2x2 max pool between    32 @ 32, 64 @ 16, 128 @ 8, 256 @ 4
    head   global average pool, dropout, linear 256->101 = logits over ages 0..100

The age is the expectation of the softmax over the 101 bins (:meth:`AgeEstimator.age`).
Training (Gao et al., "Deep Label Distribution Learning", TIP 2017): cross-entropy to a
Gaussian of sigma 2 years around the true age, plus the L1 of the expected age.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Self

import torch
import torch.nn.functional as F
from torch import nn

from faceage.checkpoint import load_checkpoint
from faceage.errors import MissingWeightsError

__all__ = ["AGES", "INPUT_SIZE", "AgeEstimator", "label_distribution"]

INPUT_SIZE: Final = 64
AGES: Final = torch.arange(101, dtype=torch.float32)  # bin k stands for age k years
DEFAULT_WEIGHTS: Final = Path(__file__).resolve().parents[2] / "assets" / "age_estimator_A.safetensors"


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AgeEstimator(nn.Module):
    """Estimator A (see the module docstring); ``forward`` gives logits over :data:`AGES`."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, widths[0], stride=2)]
        c = widths[0]
        for w in widths:
            layers += [conv_bn(c, w), conv_bn(w, w), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers[:-1])  # the last stage ends at 4x4 without pooling
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, len(AGES)))
        self.widths = tuple(widths)
        self.info: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"AgeEstimator expects [N,3,H,W] faces in [-1,1], got {tuple(x.shape)}")
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.head(self.features(x).mean(dim=(2, 3)))

    @staticmethod
    def expected_age(logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1) @ AGES.to(logits.device)

    @torch.no_grad()
    def age(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Predicted age in years of canonical-frame faces ``x`` ``[N,3,S,S]`` in ``[-1,1]``."""
        device = next(self.parameters()).device
        return torch.cat(
            [torch.zeros(0)]
            + [self.expected_age(self(x[i : i + batch].to(device))).cpu() for i in range(0, len(x), batch)]
        )

    @classmethod
    def load(cls, path: str | Path | None = None, *, device: torch.device | str = "cpu") -> Self:
        path = Path(path) if path else DEFAULT_WEIGHTS
        if not path.is_file():
            raise MissingWeightsError(
                f"no age estimator weights at {path}; train them with `python -m train.age.train_estimator` "
                "or restore assets/ from the repository"
            )
        tensors, info = load_checkpoint(path)
        net = cls(widths=tuple(info.get("widths", (32, 64, 128, 256))))
        net.load_state_dict(tensors)
        net.info = info  # the training manifest: data, epochs, test-split MAE
        return net.to(device).eval()


def label_distribution(ages: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Gaussian target over :data:`AGES` around each true age (rows sum to 1)."""
    d = AGES.to(ages.device)[None, :] - ages.float()[:, None]
    p = torch.exp(-0.5 * (d / sigma) ** 2)
    return p / p.sum(dim=1, keepdim=True)
