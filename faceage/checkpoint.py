"""Checkpoints: safetensors only (no pickle anywhere), written atomically, verified on load.

A checkpoint is one ``.safetensors`` file holding named tensors (``G_ema.E_c...``, ``opt_G.state.3.exp_avg``
...) and a JSON manifest in its metadata (format version, kind, step, config, RNG state, hyper-parameters
of the optimisers). Loading never executes code: safetensors stores raw tensors only.
A SHA-256 over the tensor bytes is stored in the manifest, so a truncated or corrupt file is detected
with a clear message rather than loaded half-way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from faceage.errors import CheckpointError, MissingWeightsError
from faceage.io import atomic_write

FORMAT_VERSION = 1


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], manifest: dict) -> Path:
    """Write ``tensors`` + ``manifest`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = dict(manifest, format_version=FORMAT_VERSION, sha256=_digest(tensors))
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={"manifest": json.dumps(meta)})
    return path


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint: (tensors, manifest). Raises CheckpointError if it is corrupt or truncated."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        manifest = json.loads(meta["manifest"])
    except Exception as e:  # safetensors raises several types for a damaged header or body
        raise CheckpointError(
            f"{path} is not a readable faceage checkpoint ({type(e).__name__}: {e}); "
            "it may be truncated or corrupt: use the previous checkpoint or re-export it"
        ) from None
    if verify and manifest.get("sha256") and _digest(tensors) != manifest["sha256"]:
        raise CheckpointError(f"{path}: tensor contents do not match the stored checksum (corrupt file)")
    return tensors, manifest


def prefixed(module_or_dict, prefix: str) -> dict[str, torch.Tensor]:
    """state_dict of a module (or a dict) with ``prefix.`` added to every key."""
    sd = module_or_dict.state_dict() if hasattr(module_or_dict, "state_dict") else module_or_dict
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state_dict into tensors and a JSON-able part (no pickle)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict, info: dict, prefix: str) -> None:
    """Inverse of :func:`optimizer_to_tensors`: load the state into ``opt``."""
    state: dict[int, dict] = {}
    for k, v in unprefixed(tensors, prefix + ".state").items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for k, v in info.get("scalars", {}).items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def training_state(modules: dict, optimizers: dict, rng: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    """Everything a GAN trainer's resume needs, as tensors + a JSON-able part (no pickle).

    ``modules`` and ``optimizers`` map a name (the key prefix) to the object; the trainer's own RNG and
    torch's global RNG are saved too, so a resumed CPU run continues bit-identically.
    """
    tensors = {k: v for name, m in modules.items() for k, v in prefixed(m, name).items()}
    info = {}
    for name, opt in optimizers.items():
        t, info[name] = optimizer_to_tensors(opt, name)
        tensors.update(t)
    tensors["rng.trainer"] = rng.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    return tensors, info


def load_training_state(modules: dict, optimizers: dict, rng: torch.Generator, tensors: dict, info: dict) -> None:
    """Inverse of :func:`training_state`: load every module, optimiser and both RNG states."""
    for name, m in modules.items():
        m.load_state_dict(unprefixed(tensors, name))
    for name, opt in optimizers.items():
        optimizer_from_tensors(opt, tensors, info[name], name)
    rng.set_state(tensors["rng.trainer"])
    torch.set_rng_state(tensors["rng.torch"])
