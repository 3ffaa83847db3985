"""Pack a UTKFace split, resized, into one safetensors file for training (see faceage.data.utkface).

    python -m train.pack_data --split train --size 128 --out packed/utkface_train_128.safetensors
    python -m train.pack_data --split train --size 160 --codec webp --quality 80 --out packed/train160.safetensors

``raw`` is exact and fast to read; ``webp`` is small enough (under 64 MiB) to travel to a lent GPU.
"""

from __future__ import annotations

import argparse
import logging
import sys

from faceage.data.utkface import pack_split


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", required=True)
    p.add_argument("--root", default=None, help="UTKFace folder (default ../shared/data/utkface)")
    p.add_argument("--codec", default="raw", help="raw, webp or jpeg")
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    out = pack_split(a.split, a.size, a.out, root=a.root, codec=a.codec, quality=a.quality, num_workers=a.workers)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
