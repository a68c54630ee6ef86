"""The openai backend against a real `transformers serve` on loopback, through a small proxy that injects
500s, 429s with Retry-After, a stalled response, reset connections and lost responses."""

import json
import os
from collections import Counter

import pytest

from stages.runtime.journal import partial_path
from stages.runtime.runs import failed_path
from tests.conftest import read_jsonl
from tests.servers import FaultProxy, transformers_serve

PROMPTS = [
    {"id": "s1", "prompt": "How do I make tea?"},
    {"id": "c1", "prompt": [{"role": "user", "content": "Name a colour."}]},
    {"id": "s2", "prompt": "Give me a synonym for happy."},
    {"id": "c2", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]},
    {"id": "s3", "prompt": "What is 12 times 3?"},
]


@pytest.fixture(scope="module")
def server(tiny_models):
    """`transformers serve` with the tiny policy on 127.0.0.1; yields its base URL (no /v1)."""
    with transformers_serve(tiny_models.policy, tiny_models.policy.parent / "serve.log") as url:
        yield url


@pytest.fixture
def proxy_for(server):
    made = []

    def make(plan=lambda number, body: "ok", stall=4.0):
        made.append(FaultProxy(server, plan, stall))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def _prompt_key(body):
    return json.dumps(body.get("prompt", body.get("messages")), sort_keys=True)


def _args(tiny_models, proxy, *more):
    return [
        "--engine", "openai", "--model", str(tiny_models.policy), "--base-url", proxy.url,
        "-k", "3", "--max-new-tokens", "4", "--concurrency", "3", "--backoff", "0.05", *more,
    ]  # fmt: skip


def test_string_and_chat_prompts_and_the_fallback_for_servers_that_ignore_n(
    tiny_models, proxy_for, tmp_path, write_jsonl, cli
):
    proxy = proxy_for()
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, *_args(tiny_models, proxy, "--source", "api"))
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [p["id"] for p in PROMPTS]
    assert all(len(r["responses"]) == 3 and {x["source"] for x in r["responses"]} == {"api"} for r in rows)
    paths = Counter(r["path"] for r in proxy.requests)
    # transformers serve returns one choice whatever n is, so each prompt takes three requests: n=3, 2, 1.
    assert paths == {"/v1/completions": 9, "/v1/chat/completions": 6}
    asked = {}
    for request in proxy.requests:
        asked.setdefault(_prompt_key(request["body"]), []).append(request["body"]["n"])
    assert sorted(asked.values()) == [[3, 2, 1]] * 5
    assert len({r["body"]["seed"] for r in proxy.requests}) == 15  # follow-ups do not repeat a seed
    assert proxy.delivered == 15
    # The server's "length" (4 tokens were not enough) is kept: it marks a response training must not end. Its
    # other reasons are kept as given, a missing one as "stop".
    assert "length" in proxy.finish_reasons
    assert Counter(x["finish_reason"] for r in rows for x in r["responses"]) == Counter(
        reason or "stop" for reason in proxy.finish_reasons)

    chat_only = tmp_path / "chat.jsonl"
    before = len(proxy.requests)
    result = cli("sample", write_jsonl("p2.jsonl", PROMPTS[:1]), "-o", chat_only, *_args(tiny_models, proxy),
                 "--endpoint", "chat")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert {r["path"] for r in proxy.requests[before:]} == {"/v1/chat/completions"}
    assert proxy.requests[before]["body"]["messages"] == [{"role": "user", "content": "How do I make tea?"}]


def test_faults_end_with_exactly_k_responses_and_nothing_duplicated(tiny_models, proxy_for, tmp_path, write_jsonl, cli):
    faults = ["500", "429", "stall", "reset", "drop", "503"]
    proxy = proxy_for(lambda number, body: faults[number] if number < len(faults) else "ok", stall=4.5)
    out = tmp_path / "s.jsonl"
    # The stall outlasts the client's timeout; a real answer from the tiny model takes well under a second.
    args = _args(tiny_models, proxy, "--timeout", "3", "--max-retries", "6")
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [len(r["responses"]) for r in rows] == [3] * 5
    # Every response that reached the client is in the output once, and nothing else is.
    assert proxy.delivered == 15
    actions = Counter(r["action"] for r in proxy.requests)
    assert all(actions[f] == 1 for f in faults) and actions["ok"] == 15
    assert not failed_path(out).exists()
    # The request refused with 429 is retried no sooner than its Retry-After.
    refused = next(r for r in proxy.requests if r["action"] == "429")
    same = [r for r in proxy.requests if r["body"] == refused["body"] and r["time"] > refused["time"]]
    assert same and same[0]["time"] - refused["time"] >= 0.95


def test_a_prompt_that_keeps_failing_is_reported_never_dropped(tiny_models, proxy_for, tmp_path, write_jsonl, cli):
    poisoned = [*PROMPTS, {"id": "bad", "prompt": "POISON"}]
    proxy = proxy_for(lambda number, body: "500" if "POISON" in json.dumps(body) else "ok")
    src, out = write_jsonl("p.jsonl", poisoned), tmp_path / "s.jsonl"
    args = _args(tiny_models, proxy, "--max-retries", "2", "--batch-size", "2")
    result = cli("sample", src, "-o", out, *args)
    assert result.exit_code == 1
    assert "1 prompt(s) failed" in result.stderr and "--allow-failures" in result.stderr
    assert not out.exists()
    [failure] = read_jsonl(failed_path(out))
    assert failure["id"] == "bad" and failure["error"].startswith("HTTP 500") and "injected failure" in failure["error"]
    assert sum(1 for r in proxy.requests if "POISON" in json.dumps(r["body"])) == 3  # one try + two retries
    journaled = [r["id"] for r in read_jsonl(partial_path(out))[1:]]
    assert sorted(journaled) == sorted(p["id"] for p in PROMPTS)

    # Running again retries only the failed prompt; --allow-failures then writes the output without it.
    before = len(proxy.requests)
    result = cli("sample", src, "-o", out, *args, "--allow-failures")
    assert result.exit_code == 0, result.stderr
    assert all("POISON" in json.dumps(r["body"]) for r in proxy.requests[before:])
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert list(rows) == [p["id"] for p in poisoned]
    assert rows["bad"]["responses"] == [] and all(len(rows[p["id"]]["responses"]) == 3 for p in PROMPTS)
    counts = json.loads(out.with_name("s.jsonl.meta.json").read_text())["counts"]
    assert counts["failed_prompts"] == 1 and counts["prompts_sampled"] == 5 and counts["resumed_prompts"] == 5
    assert [r["id"] for r in read_jsonl(failed_path(out))] == ["bad"]


def test_the_api_key_is_sent_but_never_written(tiny_models, proxy_for, tmp_path, write_jsonl, cli, monkeypatch):
    secret = "rrhf-fake-key-7f3a9c2e41"
    monkeypatch.setenv("RRHF_TEST_KEY", secret)
    proxy = proxy_for(lambda number, body: "echo-key" if "ECHO" in json.dumps(body) else "ok")
    src, out = write_jsonl("p.jsonl", [*PROMPTS[:2], {"id": "e", "prompt": "ECHO"}]), tmp_path / "s.jsonl"
    args = _args(tiny_models, proxy, "--api-key-env", "RRHF_TEST_KEY", "-v")
    failed = cli("sample", src, "-o", out, *args)
    assert failed.exit_code == 1
    journal_text = partial_path(out).read_text()
    result = cli("sample", src, "-o", out, *args, "--allow-failures")
    assert result.exit_code == 0, result.stderr
    assert {r["authorization"] for r in proxy.requests} == {f"Bearer {secret}"}
    written = [out.read_text(), out.with_name("s.jsonl.meta.json").read_text(), failed_path(out).read_text()]
    for text in [*written, journal_text, failed.stderr, failed.stdout, result.stderr, result.stdout]:
        assert secret not in text
    assert "<redacted>" in failed_path(out).read_text()
    meta = json.loads(written[1])
    assert meta["config"]["api_key_env"] == "RRHF_TEST_KEY"


def test_without_a_key_or_base_url_the_run_stops_before_any_request(tmp_path, write_jsonl, cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--engine", "openai", "--model", "gpt-x")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "rrhf: error: set OPENAI_API_KEY to your API key (or name another variable with --api-key-env)"
    )
    assert not out.exists()


def test_message_prompts_need_the_chat_endpoint(tmp_path, write_jsonl, cli):
    src = write_jsonl("p.jsonl", PROMPTS)
    flags = ["--engine", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--endpoint", "completions"]
    result = cli("sample", src, "-o", tmp_path / "s.jsonl", *flags)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"rrhf: error: {src}:2: a message prompt needs the chat endpoint (--endpoint chat or auto)"
    )
    assert os.listdir(tmp_path) == ["p.jsonl"]
