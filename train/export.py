"""Export the shipped weights from a training run: the EMA generator only (not D, no optimiser).

    python -m train.export --run runs/cusp128 --out assets/cusp_utkface128.safetensors
    python -m train.export --run runs/amgan128 --out assets/amgan_utkface128.safetensors \\
        --hardware "2 CPU cores (shared)" --minutes 58
    python -m train.export --run runs/gw --out assets/cusp_utkface128.safetensors --half

``--half`` stores the float tensors as float16: half the file (the wide CUSP net: 7.3 instead of 14.7 MB,
which keeps the tracked tree small enough to travel to a lent GPU with the packed data). Loading casts
them back to float32 (``load_state_dict`` copies into the float32 parameters); on 8 test faces x 3
settings the edited crops moved by at most 0.49 grey levels (mean 0.02).

CUSP: T_ema (E_s, E_c, E_a, G) with ``net`` in the manifest. AMGAN: G_ema as a plain state dict, with
the :class:`faceage.amgan.model.AMGANConfig` fields under ``config`` and the training side under
``resolution`` (crop side), ``patch``, ``step`` ... (what ``faceage.amgan.editor`` reads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceage.amgan.editor import net_config
from faceage.checkpoint import load_checkpoint, save_checkpoint, unprefixed
from train.train import checkpoints


def _amgan_info(manifest: dict, cfg: dict) -> dict:
    net = net_config(cfg["net"]).to_dict()
    amgan = manifest.get("trainer", {}).get("amgan", cfg.get("amgan", {}))
    return {
        "kind": "amgan-generator",
        "config": net,
        "resolution": int(cfg["net"].get("resolution", 128)),
        "patch": int(amgan.get("patch", 64)),
        "amgan_train": amgan,
    }


def half(tensors: dict) -> dict:
    """Float tensors as float16 (the shipped form with ``--half``); others unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}


def export(
    run: Path, out: Path, hardware: str | None = None, minutes: float | None = None, half_precision: bool = False
) -> dict:
    """Write the EMA generator of the newest checkpoint of ``run`` to ``out`` with its config and step."""
    ckpts = checkpoints(run)
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints in {run}")
    tensors, manifest = load_checkpoint(ckpts[-1])
    cfg = manifest["config"]
    common = {
        "step": manifest["step"],
        "batch": cfg["batch"],
        "images_seen": manifest["step"] * cfg["batch"],
        "train_config": cfg,
        "source_checkpoint": ckpts[-1].name,
    }
    if hardware:
        common["hardware"] = hardware
    if minutes is not None:
        common["train_minutes"] = minutes
    store = half if half_precision else dict
    if half_precision:
        common["stored_dtype"] = "float16"
    if cfg.get("model") == "amgan":
        info = {**_amgan_info(manifest, cfg), **common}
        save_checkpoint(out, store(unprefixed(tensors, "G_ema")), info)
    else:
        info = {"kind": "cusp-generator", "net": cfg["net"], **common}
        save_checkpoint(out, store(unprefixed(tensors, "T_ema")), info)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--hardware", help="where it was trained, for the manifest (e.g. '1x H100')")
    p.add_argument("--minutes", type=float, help="wall-clock training minutes, for the manifest")
    p.add_argument("--half", action="store_true", help="store float tensors as float16 (half the file)")
    a = p.parse_args(argv)
    try:
        info = export(a.run, a.out, a.hardware, a.minutes, a.half)
    except FileNotFoundError as e:
        print(f"error: {e}: train first (python -m train.train ...)", file=sys.stderr)
        return 2
    print(f"wrote {a.out} (step {info['step']}, {info['images_seen']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
