"""Export the shipped weights from a training run: the EMA aging network only (not D, no optimiser).

    python -m train.export --run runs/cusp128 --out assets/cusp_utkface128.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceage.checkpoint import load_checkpoint, save_checkpoint, unprefixed
from train.train import checkpoints


def export(run: Path, out: Path) -> dict:
    """Write T_ema of the newest checkpoint of ``run`` to ``out`` with its config and step."""
    ckpts = checkpoints(run)
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints in {run}")
    tensors, manifest = load_checkpoint(ckpts[-1])
    cfg = manifest["config"]
    info = {"kind": "cusp-generator", "net": cfg["net"], "step": manifest["step"], "batch": cfg["batch"],
            "images_seen": manifest["step"] * cfg["batch"], "train_config": cfg}
    save_checkpoint(out, unprefixed(tensors, "T_ema"), info)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    try:
        info = export(a.run, a.out)
    except FileNotFoundError as e:
        print(f"error: {e}: train first (python -m train.train ...)", file=sys.stderr)
        return 2
    print(f"wrote {a.out} (step {info['step']}, {info['images_seen']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
