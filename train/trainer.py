"""The trainer contract: what :mod:`train.train` relies on in a model's trainer.

Both :class:`train.cusp.trainer.CUSPTrainer` and :class:`train.amgan.trainer.AMGANTrainer` conform
(``tests/test_train.py`` checks it on tiny instances). A new model's trainer is a class with these
members, built by ``train.train.build_trainer`` from a :class:`train.config.TrainConfig`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Trainer(Protocol):
    """One model's networks, optimisers and random state, advanced one batch at a time."""

    cfg: Any
    """The run's :class:`train.config.TrainConfig` (``cfg.model`` names the model)."""

    resolution: int
    """Side of the training images, pixels (the data are loaded at this size)."""

    step: int
    """Optimisation steps done so far (restored by :meth:`load_state`)."""

    def train_step(self, x: torch.Tensor, age: torch.Tensor, *labels: torch.Tensor) -> dict[str, float | torch.Tensor]:
        """One generator step and one discriminator step on this process's part of a batch: images ``x``
        ``[n, 3, R, R]`` in [-1, 1], ages ``[n]`` and the dataset's further labels (CUSP: age groups, and the
        cached masks when ``cusp.cache_masks``; AMGAN: sign scores and face placement). The random draws depend
        only on the seed and the step, so a resumed run repeats the same curve. Returns the scalar losses to log
        (``"G/..."``, ``"D/..."``): floats, or 0-d tensors the loop reads only when it logs (no host sync per step)."""
        ...

    def samples(self, x: torch.Tensor) -> torch.Tensor:
        """The sample grid of fixed faces ``x``: ``[N, rows, 3, R, R]`` in [-1, 1], the EMA generator's edits
        (``train.train.grid_image`` turns it into one image)."""
        ...

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resume needs: the tensors (networks, EMA, optimisers, RNG) and JSON-able info,
        saved together in a run's checkpoint."""
        ...

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict, step: int) -> None:
        """Restore what :meth:`state_tensors` returned, at ``step``."""
        ...

    def generators(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(trained, EMA) copies of the generator: what ``init_weights`` fills."""
        ...

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The shipped weights: the EMA generator's state dict (no discriminator, no optimiser)."""
        ...
