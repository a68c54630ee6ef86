"""The `rrhf` command: its help, and `inspect` on every artifact kind."""

import json
import subprocess
import sys

import pytest

from stages.contract.inputs import load_records
from stages.runtime.runs import StageRun


def test_help_lists_the_stages(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("sample", "score", "rank", "train", "inspect"):
        assert f"  {name} " in result.stdout


def test_console_script_starts_without_loading_torch():
    code = "import sys; from rrhf_cli.app import app; assert 'torch' not in sys.modules, 'torch imported at start-up'"
    subprocess.run([sys.executable, "-c", code], check=True)


ARTIFACTS = {
    "prompts": [{"prompt": "a"}, {"prompt": [{"role": "user", "content": "b"}]}],
    "samples": [
        {"id": "1", "prompt": "a", "responses": [{"text": "x", "source": "m1"}, {"text": "y", "source": "m2"}]}
    ],
    "scored": [
        {
            "id": "1",
            "prompt": "a",
            "responses": [
                {"text": "x", "source": "m1", "score": 1.0, "scores": {"rm": 1.0}},
                {"text": "y", "source": "m2", "score": 3.0, "scores": {"rm": 3.0}},
            ],
        }
    ],
    "ranked": [
        {
            "id": "1",
            "prompt": "a",
            "responses": [
                {"text": "y", "source": "m2", "score": 3.0},
                {"text": "x", "source": "m1", "score": 1.0},
            ],
            "pairs": [[0, 1]],
        }
    ],
    "pairs": [
        {"id": "1:0>1", "prompt": "a", "chosen": "y", "rejected": "x", "score_chosen": 3.0, "score_rejected": 1.0},
        {"id": "2:0>1", "prompt": "b", "chosen": "u", "rejected": "v", "score_chosen": 2.0, "score_rejected": 0.0},
    ],
}


@pytest.mark.parametrize("kind", list(ARTIFACTS))
def test_inspect_json_on_every_artifact_kind(kind, write_jsonl, cli):
    path = write_jsonl(f"{kind}.jsonl", ARTIFACTS[kind])
    result = cli("inspect", path, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["records"] == len(ARTIFACTS[kind])
    if kind == "prompts":
        assert summary["responses"] == 0 and summary["chat_prompts"] == 1
    if kind == "samples":
        assert summary["sources"] == {"m1": 1, "m2": 1} and summary["unscored"] == 2
    if kind == "scored":
        assert summary["score"] == {"count": 2, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
        assert summary["named_scores"]["rm"]["mean"] == 2.0
        # Per source: its scores, and the prompts whose best response is its own (what --sft-sources picks by).
        assert {name: s["mean"] for name, s in summary["source_scores"].items()} == {"m1": 1.0, "m2": 3.0}
        assert summary["best_sources"] == {"m2": 1}
    if kind == "ranked":
        assert summary["pairs"] == 1
    if kind == "pairs":
        assert summary["format"] == "trl-preference" and summary["pairs"] == 2
        assert summary["sources"] == {"chosen": 2, "rejected": 2}


def test_inspect_table_shows_summary_and_meta(tmp_path, write_jsonl, cli):
    from pydantic import BaseModel

    class Config(BaseModel):
        k: int = 4

    src = write_jsonl("scored.jsonl", ARTIFACTS["scored"])
    out = tmp_path / "copy.jsonl"
    loaded = load_records(src)
    StageRun("score", Config(), out, [loaded.summary]).finish(loaded.records)
    result = cli("inspect", out)
    assert result.exit_code == 0, result.stderr
    for text in ("records", "responses per prompt", "mean 2.000", "sources", "m1", "best of a prompt", "meta",
                 "score (rrhf", '{"k": 4}'):
        assert text in result.stdout
    as_json = json.loads(cli("inspect", out, "--json").stdout)
    assert as_json["meta"]["stage"] == "score" and as_json["meta"]["config"] == {"k": 4}
