"""Typed training configuration, loaded from a TOML file with validated ``key=value`` overrides.

    cfg = load_config("train/configs/cusp_tiny.toml", ["steps=200", "cusp.lambda_C=0.01", "net.resolution=64"])

A config is the run (:class:`TrainConfig`: model, data, steps, batch, seed, device, cadence ...), the
model's network under ``[net]`` (:class:`faceage.cusp.model.CUSPConfig` or :class:`AMGANNet`) and the
model's losses and optimiser under a table named after it (``[cusp]``: :class:`train.cusp.trainer.CUSPTrainConfig`;
``[amgan]``: :class:`train.amgan.trainer.AMGANTrainConfig`). Every table is built with
:func:`faceage.config.from_dict`: an unknown key is refused, and so is the other model's table. Only the chosen
model's tables are saved, as JSON, in every checkpoint and beside the run (``config.json``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from faceage.amgan.model import RETIRED_NET_OPTIONS, AMGANConfig
from faceage.config import from_dict, to_dict
from faceage.cusp.model import CUSPConfig
from train.amgan.trainer import AMGANTrainConfig
from train.cusp.trainer import CUSPTrainConfig


@dataclass
class AMGANNet(AMGANConfig):
    """The ``[net]`` table of an AMGAN run: the network plus the side of the training crops (G and D are
    fully convolutional, so the crop side is not a network hyper-parameter and exports store it apart)."""

    resolution: int = 128


MODELS = {"cusp": (CUSPConfig, {}, CUSPTrainConfig), "amgan": (AMGANNet, RETIRED_NET_OPTIONS, AMGANTrainConfig)}
"""Per model name: its ``[net]`` class, the retired ``[net]`` options still read at their off value, and the
class of its own table."""

FLAT_CUSP_KEYS = (
    "lr",
    "betas",
    "lambda_r",
    "lambda_C",
    "lambda_D",
    "lambda_cy",
    "r1_gamma",
    "r1_every",
    "target_age_range",
    "sigma_zero_prob",
    "classifier",
)
"""Keys that configs saved before the typed tables held at the top level, for every model: read into
``[cusp]`` for a CUSP run, dropped for an AMGAN run (its trainer never read them)."""


@dataclass
class TrainConfig:
    """One training run. ``net`` and the model's own table are typed; the other model's table is None."""

    model: str = "cusp"  # "cusp" or "amgan"
    net: CUSPConfig | AMGANNet | None = None  # the model's [net] table (None: its defaults)
    cusp: CUSPTrainConfig | None = None  # CUSP's losses and optimiser (a CUSP run only)
    amgan: AMGANTrainConfig | None = None  # AMGAN's losses, rates, patch (an AMGAN run only)
    data: str = "synthetic"  # path of a packed split (.safetensors, see faceage.data) or "synthetic"
    steps: int = 1000  # optimisation steps (one G step + one D step each)
    batch: int = 16  # the global batch (split over the processes under torchrun)
    ema_half_life_images: float = 5000.0  # EMA of G: beta = 0.5 ** (batch / half_life) (StyleGAN2: 10k)
    augment_flip: bool = True  # random horizontal flips (AMGAN refuses them: its labels are per side)
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when present, else cpu
    amp: str = "none"  # "none" or "bf16" (autocast on CUDA)
    channels_last: bool = False
    num_workers: int = 0
    log_every: int = 10  # scalars to TensorBoard / stats.jsonl
    sample_every: int = 200  # image grid to TensorBoard and samples/
    ckpt_every: int = 200  # checkpoint interval (steps)
    keep_ckpts: int = 2
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    init_weights: str = ""  # exported generator (train.export) to start a new run from; ignored on resume

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: use one of {', '.join(MODELS)}")
        net_cls, _, own_cls = MODELS[self.model]
        if self.net is None:
            self.net = net_cls()
        if not isinstance(self.net, net_cls):
            raise ValueError(f"a {self.model} run needs net: {net_cls.__name__}, got {type(self.net).__name__}")
        if getattr(self, self.model) is None:
            setattr(self, self.model, own_cls())
        for other in MODELS:
            if other != self.model and getattr(self, other) is not None:
                raise ValueError(f"a {self.model} config has no [{other}] table")

    @property
    def train(self) -> CUSPTrainConfig | AMGANTrainConfig:
        """The chosen model's own table (``cfg.cusp`` or ``cfg.amgan``)."""
        return getattr(self, self.model)

    @classmethod
    def from_dict(cls, d: dict, saved: bool = False) -> TrainConfig:
        """From a TOML document with its overrides, or (``saved``) a checkpoint's or manifest's ``config``,
        which may also be in the flat layout written before the typed tables (:data:`FLAT_CUSP_KEYS`)."""
        d = dict(d)
        model = d.get("model", "cusp")
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
        net_cls, retired_net, own_cls = MODELS[model]
        flat = {k: d.pop(k) for k in FLAT_CUSP_KEYS if k in d}
        if flat and not saved:
            raise ValueError(
                f"top-level keys {sorted(flat)} are CUSP loss/optimiser settings: "
                + (
                    "write them under [cusp] (--set cusp.KEY=VALUE)"
                    if model == "cusp"
                    else "an AMGAN run has its own under [amgan]"
                )
            )
        own = d.pop(model, None) or {}
        if model == "cusp" and flat:
            if own:
                raise ValueError(f"a saved config with both [cusp] and top-level {sorted(flat)}")
            own = flat
        for other in MODELS:
            if other != model and d.pop(other, None) not in (None, {}):
                raise ValueError(f"a {model} config has no [{other}] table (model = {model!r})")
        d["net"] = from_dict(net_cls, d.get("net") or {}, retired=retired_net, where="[net]")
        d[model] = own_cls.from_dict(own)
        return from_dict(cls, d, where="top-level")

    def to_dict(self) -> dict:
        """Plain JSON types: the run's fields, ``net`` and the chosen model's table (the other is left out)."""
        d = to_dict(self)
        for other in MODELS:
            if other != self.model:
                del d[other]
        return d


def _parse_value(text: str):
    """Parse an override value as TOML (numbers, booleans, arrays, strings), else keep it as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Load a TOML config and apply ``key=value`` overrides (``net.resolution=64`` reaches into ``[net]``,
    ``cusp.lambda_C=0.01`` into ``[cusp]``)."""
    d = tomllib.loads(Path(path).read_text()) if path else {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        target = d
        *parents, leaf = key.strip().split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = _parse_value(value.strip())
    return TrainConfig.from_dict(d)
