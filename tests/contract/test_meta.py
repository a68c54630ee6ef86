"""The meta sidecar records what made an artifact, and never a secret."""

import json

from pydantic import BaseModel

from stages.contract.inputs import load_records
from stages.contract.meta import REDACTED, read_meta, redact
from stages.runtime.runs import StageRun


def test_redact_hides_credentials_but_keeps_env_var_names():
    config = {
        "api_key": "abc123",
        "api_key_env": "OPENAI_API_KEY",
        "headers": {"Authorization": "Bearer xyz"},
        "base_url": "http://127.0.0.1:8000/v1",
        "extra": ["sk-proj-0123456789abcdef", "plain"],
        "hf_token": None,
    }
    assert redact(config) == {
        "api_key": REDACTED,
        "api_key_env": "OPENAI_API_KEY",
        "headers": {"Authorization": REDACTED},
        "base_url": "http://127.0.0.1:8000/v1",
        "extra": [REDACTED, "plain"],
        "hf_token": None,
    }


class _Config(BaseModel):
    model: str = "tiny"
    api_key: str | None = None
    seed: int = 0


def test_stage_run_writes_artifact_and_meta(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    loaded = load_records(src)
    out = tmp_path / "out.jsonl"
    run = StageRun("demo", _Config(api_key="sk-secret-value-123456"), out, [loaded.summary])
    run.finish(loaded.records, counts={"dropped": 0})
    meta = read_meta(out)
    assert meta is not None
    assert meta.stage == "demo" and meta.counts == {"records": 2, "dropped": 0}
    assert meta.inputs[0].path == str(src) and meta.inputs[0].sha256 == loaded.sha256
    assert meta.inputs[0].format == "trl-prompt" and meta.inputs[0].records == 2
    assert meta.config == {"model": "tiny", "api_key": REDACTED, "seed": 0}
    assert meta.started_at <= meta.finished_at
    raw = (tmp_path / "out.jsonl.meta.json").read_text()
    assert "sk-secret" not in raw and "sk-secret" not in out.read_text()
    assert json.loads(raw)["rrhf_version"]
    assert not list(tmp_path.glob(".out.jsonl.*.tmp")), "no temp file left behind"
