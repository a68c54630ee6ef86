"""The judge backend against a real `transformers serve` on 127.0.0.1.

The judge is the tiny policy fine-tuned by `rrhf train` (plain SFT) to answer the test's short templates
in the judge format: `Score: 7` pointwise and `{"scores": [8, 3]}` listwise; the untrained policy plays a
judge whose answers cannot be read.
"""

import json

import pytest

from stages.contract.artifacts import write_records
from stages.contract.schema import Record, Response
from stages.runtime.runs import failed_path
from stages.score.judge_prompts import load_template, render
from tests.conftest import read_jsonl
from tests.servers import FaultProxy, PositionJudge, transformers_serve

POINTWISE = "J1 $prompt :: $response"
LISTWISE = "J2 $prompt :: $responses"
QUESTIONS = ["Say hello.", "Name a fruit.", "What is 2+2?", "Pick a colour.", "Tell a joke.", "Count to three."]
ANSWERS = ["hello there", "hi", "apple", "4", "red", "No.", "one two three"]
SAMPLES = [
    {"id": "a", "prompt": "Say hello.",
     "responses": [{"text": "hello there", "source": "m"}, {"text": "hi", "source": "m"}]},
    {"id": "b", "prompt": [{"role": "user", "content": "Name a fruit."}],
     "responses": [{"text": "apple", "source": "m"}, {"text": "red", "source": "m"}]},
]


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    (folder / "point.txt").write_text(POINTWISE)
    (folder / "list.txt").write_text(LISTWISE)
    return folder / "point.txt", folder / "list.txt"


@pytest.fixture(scope="module")
def judge_url(tiny_models, templates, tmp_path_factory):
    """A served judge model trained to answer both templates in the expected format."""
    from stages.train.config import TrainConfig
    from stages.train.run import run_train

    folder = tmp_path_factory.mktemp("judge")
    point, listwise = (load_template(path, False) for path in templates)
    records = []
    for q in QUESTIONS:
        for a in ANSWERS:
            records.append((render(point, q, [a]), "Score: 7"))
        for a, b in zip(ANSWERS, ANSWERS[1:], strict=False):
            records.append((render(listwise, q, [a, b]), '{"scores": [8, 3]}'))
    data = folder / "sft.jsonl"
    write_records(data, [
        Record(id=str(i), prompt=[{"role": "user", "content": text}], responses=[Response(text=answer, score=1.0)])
        for i, (text, answer) in enumerate(records)
    ])
    config = TrainConfig(model=str(tiny_models.policy), rank_weight=0.0, lr=2e-2, max_steps=40,
                         queries_per_batch=8, logging_steps=40)
    run_train(str(data), folder / "model", config)
    with transformers_serve(folder / "model", folder / "serve.log") as url:
        yield url, folder / "model"


def _score(cli, samples, out, served, *extra):
    url, model = served  # transformers serve loads the model named in the request: its folder
    return cli("score", samples, "-o", out, "--scorer", "judge", "--model", model, "--base-url", f"{url}/v1",
               "--max-tokens", "12", *extra)


def test_pointwise_and_listwise(judge_url, templates, write_jsonl, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123456789")
    samples = write_jsonl("samples.jsonl", SAMPLES)
    point = tmp_path / "point.jsonl"
    result = _score(cli, samples, point, judge_url, "--judge-template", templates[0], "--as", "judge")
    assert result.exit_code == 0, result.stderr
    assert [[r["score"] for r in row["responses"]] for row in read_jsonl(point)] == [[7.0, 7.0], [7.0, 7.0]]
    listed = tmp_path / "list.jsonl"
    result = _score(cli, samples, listed, judge_url, "--judge-template", templates[1], "--judge-mode", "listwise",
                    "--no-judge-shuffle")  # this judge always answers [8, 3]: input order keeps that readable
    assert result.exit_code == 0, result.stderr
    assert [[r["score"] for r in row["responses"]] for row in read_jsonl(listed)] == [[8.0, 3.0], [8.0, 3.0]]
    for path in (point, listed):
        for text in (path.read_text(), path.with_name(path.name + ".meta.json").read_text(), result.stderr):
            assert "sk-test-secret" not in text
    assert json.loads(point.with_name("point.jsonl.meta.json").read_text())["config"]["api_key_env"] == "OPENAI_API_KEY"


def test_faults_are_retried_and_nothing_is_scored_twice(judge_url, templates, write_jsonl, tmp_path, cli):
    url, model = judge_url
    faults = {0: "500", 1: "429", 2: "reset", 3: "stall", 5: "drop"}
    proxy = FaultProxy(url, lambda number, body: faults.get(number, "ok"), stall=3.0)
    try:
        out = tmp_path / "scored.jsonl"
        result = _score(cli, write_jsonl("samples.jsonl", SAMPLES), out, (proxy.url.removesuffix("/v1"), model),
                        "--judge-template", templates[0], "--timeout", "1", "--backoff", "0.05", "--concurrency", "2")
        assert result.exit_code == 0, result.stderr
    finally:
        proxy.close()
    assert [[r["score"] for r in row["responses"]] for row in read_jsonl(out)] == [[7.0, 7.0], [7.0, 7.0]]
    answered = [r for r in proxy.requests if r["action"] == "ok"]
    assert len(answered) == 4, "each response is judged exactly once once its request gets through"
    assert {r["action"] for r in proxy.requests} >= {"500", "429", "reset", "stall", "drop"}


def test_unreadable_answers_fail_the_run_then_allow_failures_keeps_them(tiny_models, write_jsonl, tmp_path, cli):
    samples = write_jsonl("samples.jsonl", SAMPLES[:1])
    out = tmp_path / "scored.jsonl"
    with transformers_serve(tiny_models.policy, tmp_path / "serve.log") as url:
        result = _score(cli, samples, out, (url, tiny_models.policy), "--max-retries", "1")
        assert result.exit_code == 1
        assert "2 of 2 responses could not be scored" in result.stderr
        assert not out.exists()
        failures = read_jsonl(failed_path(out))
        assert [f["response"] for f in failures] == [0, 1]
        assert all(f["error"].startswith("unreadable judge answer") and f["raw"] for f in failures)

        result = _score(cli, samples, out, (url, tiny_models.policy), "--max-retries", "1", "--allow-failures")
        assert result.exit_code == 0, result.stderr
    (row,) = read_jsonl(out)
    assert all("score" not in r and r["score_error"] and "judge_raw" in r for r in row["responses"])


def test_concurrency_requests_are_in_flight_across_records(judge_url, templates, write_jsonl, tmp_path, cli):
    url, model = judge_url
    rows = [{"id": str(i), "prompt": q, "responses": [{"text": a, "source": "m"} for a in ANSWERS[:2]]}
            for i, q in enumerate(QUESTIONS[:4])]
    proxy = FaultProxy(url, lambda number, body: "ok")
    try:
        out = tmp_path / "scored.jsonl"
        result = _score(cli, write_jsonl("samples.jsonl", rows), out, (proxy.url.removesuffix("/v1"), model),
                        "--judge-template", templates[0], "--concurrency", "6")
        assert result.exit_code == 0, result.stderr
    finally:
        proxy.close()
    assert len(proxy.requests) == 8
    assert proxy.max_in_flight == 6, "2 responses per record, yet 6 requests in flight: the gate spans records"


def _listwise_rows(k):
    return [{"id": f"r{i}", "prompt": f"Question {i}?", "responses": [{"text": f"answer {j}", "source": "m"}
                                                                        for j in range(k)]} for i in range(3)]


def test_listwise_order_is_shuffled_per_prompt_and_mapped_back(write_jsonl, tmp_path, cli):
    from stages.contract.ids import derive_seed
    from stages.score.judge_orders import averaged, judge_orders

    judge = PositionJudge()  # answer j as shown gets score j
    try:
        out = tmp_path / "scored.jsonl"
        samples = write_jsonl("samples.jsonl", _listwise_rows(4))
        for orders in ("1", "3"):
            result = cli("score", samples, "-o", out, "--scorer", "judge", "--model", "judge", "--judge-mode",
                         "listwise", "--base-url", f"{judge.url}/v1", "--seed", "5", "--judge-orders", orders)
            assert result.exit_code == 0, result.stderr
            for row in read_jsonl(out):
                expected = judge_orders(4, int(orders), derive_seed(5, row["id"], "judge-order"))
                by_position = [[1.0, 2.0, 3.0, 4.0]] * len(expected)
                assert [r["score"] for r in row["responses"]] == averaged(expected, by_position)
        shown = [[line.split("\n")[1] for line in body["messages"][0]["content"].split("[Answer ")[1:]]
                 for body in judge.requests[:3]]
        assert len({tuple(s) for s in shown}) > 1, "each prompt gets its own order"
        assert any(s != [f"answer {j}" for j in range(4)] for s in shown)
    finally:
        judge.close()


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(write_jsonl, tmp_path, cli):
    judge = PositionJudge()  # the model `reasoning` refuses max_tokens and temperature, as OpenAI's do
    try:
        samples = write_jsonl("samples.jsonl", _listwise_rows(2))
        base = ("score", samples, "--scorer", "judge", "--model", "reasoning", "--judge-mode", "listwise",
                "--base-url", f"{judge.url}/v1")
        result = cli(*base, "-o", tmp_path / "auto.jsonl")
        assert result.exit_code == 0, result.stderr
        last = judge.requests[-1]
        assert last["max_completion_tokens"] == 512 and "max_tokens" not in last and "temperature" not in last
        assert len(judge.requests) <= 3 + 2 * 3, "each refusal is adapted to once, not retried per response"

        judge.requests.clear()
        result = cli(*base, "-o", tmp_path / "set.jsonl", "--judge-max-tokens-param", "max_completion_tokens",
                     "--judge-temperature", "omit")
        assert result.exit_code == 0, result.stderr
        assert len(judge.requests) == 3

        result = cli(*base, "-o", tmp_path / "classic.jsonl", "--judge-max-tokens-param", "max_tokens")
        assert result.exit_code == 1 and "HTTP 400" in result.stderr
    finally:
        judge.close()


@pytest.mark.parametrize(("failing", "calls_made", "error"), [
    (lambda n: n % 3 != 0, 5, "judge request failed"),  # 2 retries, an answer, a re-ask, 1 retry: budget spent
    (lambda n: False, 3, "unreadable judge answer"),  # the first ask and 2 re-asks, no retries
])
def test_transport_retries_and_reasks_are_separate_budgets(failing, calls_made, error):
    """--max-retries 3 and --judge-reasks 2 allow at most 3 retries and 2 re-asks per judged item in all:
    3 + 3 calls at most, where nested budgets allowed (3 + 1) * (2 + 1)."""
    import asyncio

    import httpx2
    import openai

    from stages.score.config import ScoreConfig
    from stages.score.judge import JudgeScorer

    calls = []

    class Completions:
        async def create(self, **kwargs):
            calls.append(kwargs)
            if failing(len(calls)):
                request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
                raise openai.InternalServerError("boom", response=httpx2.Response(500, request=request), body=None)
            message = type("M", (), {"content": "no score here"})
            return type("R", (), {"choices": [type("C", (), {"message": message})]})

    client = type("Client", (), {"chat": type("Chat", (), {"completions": Completions()})})
    config = ScoreConfig(scorer="judge", model="m", base_url="http://127.0.0.1:1/v1", max_retries=3,
                         judge_reasks=2, backoff=0.001)
    result = asyncio.run(JudgeScorer(config)._ask(client, asyncio.Semaphore(1), "rate", float, "x"))
    assert result.error.startswith(error)
    assert len(calls) == calls_made
