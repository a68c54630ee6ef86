"""Value-head reward models (TRL's v_head.summary, OpenRLHF's value_head): scores equal a direct computation."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages.score.value_head import folded, value_head_prefix
from tests.conftest import chat_ids, read_jsonl

SAMPLES = [
    {"id": "a", "prompt": "Say hello.", "responses": [{"text": "hello there", "source": "m"},
                                                      {"text": "hi", "source": "m"}]},
    {"id": "b", "prompt": [{"role": "user", "content": "Name a fruit."}],
     "responses": [{"text": "apple", "source": "m"}, {"text": "a red apple from the orchard", "source": "m"}]},
]


def test_value_head_prefix_and_normalisation_on_literals():
    assert value_head_prefix(["model.norm.weight", "v_head.summary.weight", "v_head.summary.bias"]) == "v_head.summary"
    assert value_head_prefix(["model.norm.weight", "value_head.weight"]) == "value_head"
    assert value_head_prefix(["model.norm.weight", "score.weight"]) is None
    # (w.h + b - mean) / std with w = [2, 4], b = 1, mean = 3, std = 2: w' = [1, 2], b' = -1
    assert folded([2.0, 4.0], 1.0, mean=3.0, std=2.0) == ([1.0, 2.0], -1.0)


def _value_head_checkpoint(policy, folder, prefix, bias, config_extra=None):
    """The tiny policy's folder with a value head added to its weights, as TRL or OpenRLHF save one."""
    shutil.copytree(policy, folder)
    weights = load_file(folder / "model.safetensors")
    hidden = weights["model.norm.weight"].shape[0]
    generator = torch.Generator().manual_seed(3)
    head = {f"{prefix}.weight": torch.randn(1, hidden, generator=generator)}
    if bias:
        head[f"{prefix}.bias"] = torch.tensor([0.25])
    save_file({**weights, **head}, folder / "model.safetensors", metadata={"format": "pt"})
    if config_extra:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | config_extra))
    return head[f"{prefix}.weight"][0], float(head[f"{prefix}.bias"]) if bias else 0.0


@pytest.mark.parametrize(("prefix", "bias", "extra", "rm_head", "pack"), [
    ("v_head.summary", True, None, "auto", "on"),  # TRL
    ("value_head", False, {"normalize_reward": True, "mean": 0.5, "std": 2.0}, "value-head", "off"),  # OpenRLHF
])
def test_value_head_scores_equal_a_direct_computation(tiny_models, write_jsonl, tmp_path, cli, prefix, bias, extra,
                                                      rm_head, pack):
    folder = tmp_path / "vh-rm"
    weight, b = _value_head_checkpoint(tiny_models.policy, folder, prefix, bias, extra)
    out = tmp_path / "scored.jsonl"
    result = cli("score", write_jsonl("samples.jsonl", SAMPLES), "-o", out, "--scorer", "reward-model",
                 "--model", folder, "--rm-head", rm_head, "--pack-prompt", pack)
    assert result.exit_code == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().eval().model
    mean, std = (extra["mean"], extra["std"]) if extra else (0.0, 1.0)
    for sample, row in zip(SAMPLES, read_jsonl(out), strict=True):
        for response, scored in zip(sample["responses"], row["responses"], strict=True):
            ids = chat_ids(tokenizer, sample["prompt"], response["text"])
            with torch.no_grad():
                last = base(torch.tensor([ids])).last_hidden_state[0, -1]  # the response's last token
            expected = (float(last @ weight) + b - mean) / std
            assert scored["score"] == pytest.approx(expected, abs=1e-5)


def test_asking_for_a_value_head_the_checkpoint_lacks_is_one_line(tiny_models, write_jsonl, tmp_path, cli):
    result = cli("score", write_jsonl("samples.jsonl", SAMPLES), "-o", tmp_path / "s.jsonl", "--scorer",
                 "reward-model", "--model", tiny_models.reward, "--rm-head", "value-head")
    assert result.exit_code == 2
    assert result.stderr.startswith("rrhf: error: --model") and "has no value head" in result.stderr
