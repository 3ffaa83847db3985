"""Deterministic batches: the batch of global step k depends only on (seed, k), so a resumed run sees
exactly the batches an uninterrupted one would (no DataLoader RNG state to save).

Epochs are seeded permutations (reseeded per epoch from ``(seed, epoch)``); under torchrun every rank
draws the same global batch and keeps its own contiguous part (the DistributedSampler idea, per step),
so the global batch does not depend on the number of processes.
"""

from __future__ import annotations

import math

import torch

from faceage.data.ages import age_to_group


class SyntheticFaces(torch.utils.data.Dataset):
    """Tiny made-up 'faces' for tests: a disc whose brightness and ring count depend on the age."""

    def __init__(self, n: int = 64, size: int = 32, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.ages = torch.randint(0, 90, (n,), generator=g).float()
        self.hues = torch.rand(n, 3, generator=g)
        self.size = size

    def __len__(self):
        return len(self.ages)

    def __getitem__(self, i):
        s = self.size
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        r = (xx**2 + (yy * 0.8) ** 2).sqrt()
        a = float(self.ages[i]) / 90.0
        face = (r < 0.7).float() * (0.8 - 0.6 * a + 0.1 * torch.cos(r * (4 + 20 * a)))
        img = face[None] * self.hues[i][:, None, None] * 2 - 1 + (r >= 0.7).float()[None] * 0.3
        return img.clamp(-1, 1), self.ages[i], age_to_group(float(self.ages[i]))


def batch_indices(step: int, batch: int, n: int, seed: int) -> torch.Tensor:
    """Indices of the batch of global step ``step``: epochs are seeded permutations, batches wrap."""
    per_epoch = max(1, n // batch)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[pos * batch : (pos + 1) * batch]


def draw(step: int, batch: int, n: int, seed: int, flip: bool, rank: int = 0, world: int = 1):
    """(indices, flipped) of this rank's part of global step ``step``'s batch: the seeded indices of
    :func:`batch_indices` and a seeded coin per image (all False without ``flip``), drawn for the whole
    global batch and then split, so the ranks together see exactly what a single process sees."""
    idx = batch_indices(step, batch, n, seed)
    flipped = torch.zeros(len(idx), dtype=torch.bool)
    if flip:
        g = torch.Generator().manual_seed(seed * 7919 + step)
        flipped = torch.rand(len(idx), generator=g) < 0.5
    if world > 1:
        if len(idx) % world:
            raise ValueError(f"a batch of {len(idx)} does not split over {world} processes")
        part = slice(rank * len(idx) // world, (rank + 1) * len(idx) // world)
        idx, flipped = idx[part], flipped[part]
    return idx, flipped


def get_batch(dataset, step: int, batch: int, seed: int, flip: bool, rank: int = 0, world: int = 1):
    """(x [B,3,S,S] in [-1,1], age [B], group [B]) of a given global step; flips are seeded too.

    The third item (and any further one) is the dataset's third (further) field, stacked: the age group
    (CUSP), or the sign labels [B, Z] and the zone placements [B, 2, 3] (AMGAN,
    :class:`train.amgan.data.SignLabelledFaces`).

    With ``world`` > 1 processes, ``batch`` is the global batch and this returns rank ``rank``'s
    contiguous 1/world of it (see :func:`draw`); only this part is decoded.
    """
    idx, flipped = draw(step, batch, len(dataset), seed, flip, rank, world)
    items = [dataset[int(i)] for i in idx]
    x = torch.stack([it[0] for it in items])
    age = torch.tensor([float(it[1]) for it in items])
    # age groups, or AMGAN's sign labels (and zone placements), each stacked
    labels = [torch.stack([torch.as_tensor(it[k]) for it in items]) for k in range(2, len(items[0]))]
    x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    return x, age, *labels


class ResidentFaces:
    """A packed split held whole on the training device (uint8, NCHW), batched there without a per-image
    Python loop or a host sync: :meth:`batch` gives exactly :func:`get_batch`'s tensors for a
    :class:`faceage.data.utkface.PackedFaces`, plus each image's index and flip (for per-image caches such
    as CUSP's masks, ``train.cusp.mask_cache``)."""

    def __init__(self, faces, device: torch.device):
        self.device = device
        self.images = faces.images.permute(0, 3, 1, 2).contiguous().to(device)  # [N,3,S,S] uint8
        self.ages = faces.ages.float().to(device)
        self.groups = torch.tensor([age_to_group(float(a)) for a in faces.ages], device=device)
        self.size = faces.size

    def __len__(self) -> int:
        return len(self.images)

    def pixels(self, index) -> torch.Tensor:
        """Images ``index`` (indices or a slice) as float ``[n,3,S,S]`` in [-1, 1], as :func:`get_batch` gives them."""
        return self.images[index].float() / 127.5 - 1.0

    def batch(self, step: int, batch: int, seed: int, flip: bool, rank: int = 0, world: int = 1):
        """(x, age, group, idx, flipped) of step ``step``, all on the device."""
        idx, flipped = draw(step, batch, len(self), seed, flip, rank, world)
        idx, flipped = idx.to(self.device, non_blocking=True), flipped.to(self.device, non_blocking=True)
        x = self.pixels(idx)
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        return x, self.ages[idx], self.groups[idx], idx, flipped


def epoch_of(step: int, batch: int, n: int) -> float:
    return step / max(1, math.floor(n / batch))
