"""Typed training configs (train.config) and the trainer contract (train.trainer)."""

from pathlib import Path

import pytest
import torch

from faceage.checkpoint import load_checkpoint
from faceage.cusp.model import NUM_AGE_GROUPS
from faceage.data.ages import NUM_GROUPS
from train.amgan.trainer import AMGANTrainConfig, AMGANTrainer
from train.config import TrainConfig, load_config
from train.cusp.trainer import CUSPTrainConfig, CUSPTrainer
from train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "train/configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_committed_config_loads_and_saves_only_its_model(path):
    cfg = load_config(path)
    d = cfg.to_dict()
    other = {"cusp": "amgan", "amgan": "cusp"}[cfg.model]
    assert other not in d and cfg.model in d
    assert TrainConfig.from_dict(d) == cfg  # what a checkpoint saves reads back the same


def test_unknown_keys_and_the_other_models_table_are_refused():
    with pytest.raises(ValueError, match="unknown top-level keys"):
        load_config(REPO / "train/configs/cusp_tiny.toml", ["stpes=3"])
    with pytest.raises(ValueError, match=r"unknown \[net\] keys"):
        load_config(REPO / "train/configs/cusp_tiny.toml", ["net.resolutoin=64"])
    with pytest.raises(ValueError, match=r"unknown \[cusp\] keys"):
        load_config(REPO / "train/configs/cusp_tiny.toml", ["cusp.lambda_c=0.1"])
    with pytest.raises(ValueError, match=r"no \[amgan\] table"):
        load_config(REPO / "train/configs/cusp_tiny.toml", ["amgan.patch=32"])
    with pytest.raises(ValueError, match=r"no \[cusp\] table"):
        load_config(REPO / "train/configs/amgan_tiny.toml", ["cusp.lr=0.1"])
    with pytest.raises(ValueError, match=r"under \[cusp\]"):
        load_config(REPO / "train/configs/cusp_tiny.toml", ["lambda_C=0.1"])
    with pytest.raises(ValueError, match="unknown model"):
        load_config(None, ["model='stylegan'"])
    cfg = load_config(REPO / "train/configs/cusp_tiny.toml", ["cusp.lambda_C=0.01", "net.resolution=64"])
    assert cfg.cusp.lambda_C == 0.01 and cfg.net.resolution == 64 and cfg.amgan is None
    assert isinstance(TrainConfig().cusp, CUSPTrainConfig)
    assert isinstance(TrainConfig(model="amgan").amgan, AMGANTrainConfig)


def test_shipped_cusp_recipe_is_the_manifests_config():
    manifest = load_checkpoint(REPO / "assets/cusp_utkface128.safetensors")[1]
    shipped = TrainConfig.from_dict(manifest["train_config"], saved=True)  # the flat layout it was saved in
    recipe = load_config(REPO / "train/configs/cusp_utkface128.toml")
    # the shipped run: chunks of steps = 200000 cut by max_minutes at step 6,299; the recipe runs to 6,299
    assert recipe.steps == manifest["step"] == 6299 and recipe.max_minutes == 0
    same = {k: v for k, v in recipe.to_dict().items() if k not in ("steps", "max_minutes")}
    assert same == {k: v for k, v in shipped.to_dict().items() if k not in ("steps", "max_minutes")}
    assert recipe.net.to_dict() == {**recipe.net.to_dict(), **manifest["net"]}


def test_saved_flat_amgan_config_drops_the_cusp_fields_it_never_read():
    manifest = load_checkpoint(REPO / "assets/amgan_utkface128.safetensors")[1]
    cfg = TrainConfig.from_dict(manifest["train_config"], saved=True)
    assert cfg.model == "amgan" and cfg.cusp is None and "lambda_C" not in str(cfg.to_dict())


def test_cusp_discriminator_has_one_class_per_age_group():
    assert NUM_AGE_GROUPS == NUM_GROUPS


def test_both_trainers_satisfy_the_trainer_protocol():
    from train.train import load_classifier

    cusp = load_config(REPO / "train/configs/cusp_tiny.toml", ["device='cpu'"])
    amgan = load_config(REPO / "train/configs/amgan_tiny.toml", ["device='cpu'"])
    cpu = torch.device("cpu")
    for trainer in (CUSPTrainer(cusp, load_classifier(cusp), cpu), AMGANTrainer(amgan, cpu)):
        assert isinstance(trainer, Trainer), type(trainer).__name__
