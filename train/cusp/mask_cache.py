"""CUSP's masks of the training images, computed once per run and read at every step.

The mask M of a real image x (Eq. 1, guided backprop through the frozen classifier C) depends only on x,
and a training image is x or its mirror, so the whole split's masks are two passes over the data at the
start (seconds on a GPU) instead of a guided-backprop pass per step. The mask of x_fake still changes
with G and is computed in the step. Stored as float32 on the device (21,346 faces at 128 px: 2.8 GB), so a
step that reads them is the step that computes them (``tests/test_train_speed.py``).
"""

from __future__ import annotations

import torch


class MaskCache:
    """``masks[i, f]``: the mask of image ``i`` of a :class:`train.batches.ResidentFaces`, mirrored if ``f``."""

    def __init__(self, faces, mask_fn, chunk: int = 256):
        """``mask_fn``: images ``[n,3,S,S]`` in [-1, 1] -> masks ``[n,1,S,S]`` (the trainer's own)."""
        n, _, s, _ = faces.images.shape
        self.masks = torch.empty(n, 2, 1, s, s, dtype=torch.float32, device=faces.images.device)
        for start in range(0, n, chunk):
            x = faces.pixels(slice(start, start + chunk))
            for f, image in enumerate((x, x.flip(-1))):
                self.masks[start : start + chunk, f] = mask_fn(image)

    def lookup(self, idx: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
        """Masks ``[B,1,S,S]`` of images ``idx`` with flips ``flipped`` (on the device)."""
        return self.masks[idx, flipped.long()]
