"""CPU latency and peak memory of AMGAN's generator on a 1024 x 1024 image: prints figures, asserts nothing.

    PYTHONPATH=. python train/bench/amgan_latency.py [--weights assets/amgan_utkface128.safetensors] [--threads 2]

Issue #8 (c): the whole image in one fully convolutional pass (:func:`faceage.amgan.model.generate`, as
the editor runs it, location maps made), and the tiled path
(:func:`faceage.amgan.model.generate_tiled`, 256 px tiles, 64 px overlap) for images too large for
memory. Each mode runs in its own child process so its peak RSS is its own (the target: within 4 GiB).
The generator is the shipped one when its weights exist, else the default ``AMGANConfig`` with random
weights: the cost of a forward pass does not depend on the weights' values, only on the config, which is
printed. The input is a random image and a uniform aging map (again, cost does not depend on content).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from faceage.amgan.editor import AMGANEditor  # noqa: E402
from faceage.amgan.model import AMGANConfig, AMGANGenerator, generate, generate_tiled  # noqa: E402

DEFAULT_WEIGHTS = ROOT / "assets" / "amgan_utkface128.safetensors"


def load_generator(weights: Path) -> tuple[AMGANGenerator, str]:
    """The shipped generator (through the editor's loader) if ``weights`` exists, else a default-config one."""
    if weights.is_file():
        return AMGANEditor.load(weights, device="cpu").G, weights.name
    return AMGANGenerator(AMGANConfig()).eval(), "default AMGANConfig, random weights (no shipped AMGAN yet)"


def run_mode(mode: str, weights: Path, size: int, threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    G, source = load_generator(weights)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    amap = torch.full((1, G.cfg.map_channels, size, size), 0.5)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            if mode == "full":
                generate(G, image, amap)  # what the editor runs, location maps made
            else:
                generate_tiled(G, image, amap, tile=256, overlap=64)
            times.append(time.perf_counter() - t)
    return {
        "mode": mode,
        "source": source,
        "config": G.cfg.to_dict(),
        "times_ms": [t * 1000 for t in times],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=["full", "tiled"], help=argparse.SUPPRESS)  # child process
    a = p.parse_args(argv)
    if a.mode:
        print(json.dumps(run_mode(a.mode, a.weights, a.size, a.threads, a.repeats)))
        return 0
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{a.threads} threads, {a.size} x {a.size}, date {time.strftime('%Y-%m-%d')}"
    )
    for mode in ("full", "tiled"):
        cmd = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--weights",
            str(a.weights),
            "--size",
            str(a.size),
            "--threads",
            str(a.threads),
            "--repeats",
            str(a.repeats),
        ]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        if mode == "full":
            print(f"generator: {r['source']}; config {r['config']}")
        ts = np.array(r["times_ms"])
        print(
            f"{mode:5s}: first {ts[0]:8.0f} ms, median of the rest {np.median(ts[1:] if len(ts) > 1 else ts):8.0f} ms, "
            f"peak RSS {r['peak_rss_mib']:6.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
