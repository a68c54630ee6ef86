"""Every recipe config in examples/ is valid for its stage, so recipes cannot drift from the flags."""

from pathlib import Path

import pytest

from stages.runtime.resolve import load_config_file, resolve_config
from stages.sample.config import SampleConfig
from stages.score.config import ScoreConfig
from stages.train.config import TrainConfig

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"
MODELS = {"sample": SampleConfig, "score": ScoreConfig, "train": TrainConfig, "judge": ScoreConfig}


@pytest.mark.parametrize("path", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_config_is_valid(path):
    stage = path.stem.split("-")[0]
    values = load_config_file(path)
    flags = {} if "model" in values or stage == "score" else {"model": "policy"}
    resolve_config(MODELS[stage], values, flags, source=str(path))
