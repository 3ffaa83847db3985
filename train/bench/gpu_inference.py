"""CUSP inference speed on a GPU: the editor's two paths at batch 1 and 32, fp32 and bf16; asserts nothing.

    PYTHONPATH=. python train/bench/gpu_inference.py [--weights assets/cusp_utkface128.safetensors] [--data PACK]

"new face" is what a new photo costs per face once it is aligned: the mask M (guided backprop through C),
the encoders and one decode. "slider move" is what a moved slider costs: the skip blur and the decoder on
the cached encodings (the editor's fast path). Faces: the first 32 of a packed split, or noise without one.
Timed (median) over ``--reps`` runs after warm-up, the device synchronised; prints one markdown table
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceage.cusp.editor import CUSPEditor  # noqa: E402
from faceage.data.utkface import PackedFaces  # noqa: E402


def timed(fn, reps: int, device: torch.device) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` runs (3 warm-ups first), the device synchronised."""
    times = []
    for k in range(3 + reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def measure(ed: CUSPEditor, x: torch.Tensor, bf16: bool, reps: int) -> tuple[float, float]:
    """(new face, slider move) milliseconds for the faces ``x`` (one batch) edited to 60 at the custom preset,
    through the editor's own calls: ``prepare`` (mask, encoders) and its decoder pass."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        face = ed.prepare(x)
        return (
            timed(lambda: ed._decode([ed.prepare(x)], 60, 8.0, 4.5), reps, x.device),
            timed(lambda: ed._decode([face], 60, 8.0, 4.5), reps, x.device),
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--data", default=None, help="a packed split (train.pack_data) for real faces")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--device", default="cuda")
    a = p.parse_args(argv)
    ed = CUSPEditor.load(a.weights, a.device)
    dev, side = ed.device, ed.resolution
    if a.data:
        faces = PackedFaces(a.data).images[:32].permute(0, 3, 1, 2).float() / 127.5 - 1
    else:
        faces = torch.rand(32, 3, side, side) * 2 - 1
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {side} px")
    print("| batch | precision | new face (mask, encoders, decode) | slider move (blur, decode) | per face, slider |")
    print("|---|---|---|---|---|")
    for n in (1, 32):
        for bf16 in (False, True):
            full, move = measure(ed, faces[:n].to(dev), bf16, a.reps)
            kind = "bf16 autocast" if bf16 else "fp32"
            print(f"| {n} | {kind} | {full:.2f} ms | {move:.2f} ms | {move / n:.3f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
