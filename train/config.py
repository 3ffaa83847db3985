"""Typed training configuration: one dataclass, loaded from a TOML file, with validated overrides.

    cfg = load_config("train/configs/cusp_tiny.toml", ["steps=200", "batch=8"])

The resolved config is saved as JSON in every checkpoint and beside the run (``config.json``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class TrainConfig:
    """Everything a run needs; defaults are the paper's settings (CUSP Sec. 4, implementation details)."""

    model: str = "cusp"  # "cusp" or "amgan"
    net: dict = field(default_factory=dict)  # network hyper-parameters (CUSPConfig / AMGANConfig fields)
    amgan: dict = field(default_factory=dict)  # AMGAN losses, rates, patch (train.amgan_trainer.AMGANTrainConfig)
    data: str = "synthetic"  # path of a packed split (.safetensors, see faceage.data) or "synthetic"
    steps: int = 1000  # optimisation steps (one G step + one D step each)
    batch: int = 16
    lr: float = 0.0025  # Adam, beta1 = 0, beta2 = 0.99 (paper)
    betas: tuple = (0.0, 0.99)
    lambda_r: float = 10.0  # L_r weight (paper)
    # L_C weight. Paper: 0.06 (release: 0.1), tuned on the released loss, which applies softmax twice; our
    # mean-variance loss on C's logits (one softmax, as defined) pushes the image 43-54x harder
    # (train/bench/age_loss_gradient.py), and at 0.06 G paints speckle that fools C. 0.006 ages with folds.
    lambda_C: float = 0.006
    lambda_D: float = 1.0  # L_D weight (paper)
    lambda_cy: float = 10.0  # L_cy weight (paper)
    r1_gamma: float = 0.5  # R1 weight (release: 0.56 at 224-256 px)
    r1_every: int = 16  # lazy R1 interval (StyleGAN2)
    ema_half_life_images: float = 5000.0  # EMA of G: beta = 0.5 ** (batch / half_life) (StyleGAN2: 10k)
    target_age_range: tuple = (0.0, 90.0)  # target ages a_t are sampled uniformly here
    sigma_zero_prob: float = 0.25  # probability that a training sigma is exactly 0
    augment_flip: bool = True
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
    classifier: str = "assets/age_classifier_C.safetensors"
    init_weights: str = ""  # exported generator (train.export) to start a new run from; ignored on resume

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}; valid keys: {sorted(names)}")
        d = {k: tuple(v) if isinstance(v, list) and k in ("betas", "target_age_range") else v for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def _parse_value(text: str):
    """Parse an override value as TOML (numbers, booleans, arrays, strings), else keep it as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Load a TOML config and apply ``key=value`` overrides (``net.resolution=64`` reaches into ``net``)."""
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
