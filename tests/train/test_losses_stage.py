"""`rrhf train --loss`: DPO end to end with the reference as a score, and the one-line refusals."""

import json
import math

import pytest

from tests.conftest import read_jsonl

PROMPTS = ["Say hello.", "Name a fruit.", "Count to three."]
TEXTS = ["hello there", "apple", "one two three"]


@pytest.fixture
def scored(write_jsonl):
    return write_jsonl("scored.jsonl", [
        {"id": f"q{i}", "prompt": prompt,
         "responses": [{"text": t, "source": "s", "score": float((i + j) % 3)} for j, t in enumerate(TEXTS)]}
        for i, prompt in enumerate(PROMPTS)
    ])


def test_dpo_trains_on_the_reference_score_and_records_it(tiny_models, scored, tmp_path, cli):
    with_ref = tmp_path / "with-ref.jsonl"
    result = cli("score", scored, "-o", with_ref, "--scorer", "logprob", "--model", tiny_models.policy,
                 "--length-penalty", "0", "--as", "ref", "--keep-score")
    assert result.exit_code == 0, result.stderr
    before, after = read_jsonl(scored), read_jsonl(with_ref)
    for old, new in zip(before, after, strict=True):
        assert [r["score"] for r in new["responses"]] == [r["score"] for r in old["responses"]]  # kept
        assert all(r["scores"]["ref"] < 0 for r in new["responses"])

    out = tmp_path / "out"
    result = cli("train", with_ref, "-o", out, "--model", tiny_models.policy, "--loss", "dpo", "--reference", "ref",
                 "--max-steps", "4", "--lr", "1e-2", "--logging-steps", "1", "--queries-per-batch", "3")
    assert result.exit_code == 0, result.stderr
    metrics = read_jsonl(out / "metrics.jsonl")
    # At step 1 the policy is the reference: every implicit reward is 0, so each pair's loss is log 2. Any
    # mismatch between the tokens scored and the tokens trained would show here.
    assert metrics[0]["rank_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert metrics[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # sft-weight 0: DPO's default
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    meta = json.loads((out / "meta.json").read_text())
    assert {k: meta["config"][k] for k in ("loss", "reference", "beta", "gamma", "sft_weight")} == {
        "loss": "dpo", "reference": "ref", "beta": 0.1, "gamma": None, "sft_weight": 0.0}
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert "dpo" in json.dumps(identity) and "ref" in json.dumps(identity)


def test_a_reference_model_trains_as_the_reference_score(tiny_models, scored, tmp_path, cli):
    """--reference-model computes the same log-probs in-process: the same figures as the scored reference."""
    with_ref = tmp_path / "with-ref.jsonl"
    assert cli("score", scored, "-o", with_ref, "--scorer", "logprob", "--model", tiny_models.policy,
               "--length-penalty", "0", "--as", "ref", "--keep-score").exit_code == 0
    runs = {}
    for name, source, flags in (("score", with_ref, ["--reference", "ref"]),
                                ("model", scored, ["--reference-model", tiny_models.policy])):
        out = tmp_path / name
        result = cli("train", source, "-o", out, "--model", tiny_models.policy, "--loss", "listmle", *flags,
                     "--max-steps", "3", "--lr", "1e-2", "--logging-steps", "1")
        assert result.exit_code == 0, result.stderr
        runs[name] = read_jsonl(out / "metrics.jsonl")
    assert "train: reference log-probs of 3 queries from" in result.stderr
    for by_score, by_model in zip(runs["score"], runs["model"], strict=True):
        for key in ("loss", "rank_loss", "p_best", "p_worst"):
            assert by_model[key] == pytest.approx(by_score[key], abs=1e-4), key
    assert json.loads((tmp_path / "model" / "meta.json").read_text())["config"]["reference_model"] == str(
        tiny_models.policy)


def test_a_resume_under_another_loss_is_refused(tiny_models, scored, tmp_path, cli):
    out = tmp_path / "out"
    common = ["train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "2", "--save-steps", "1"]
    assert cli(*common, "--loss", "simpo").exit_code == 0
    refused = cli(*common, "--loss", "pro", "--resume")
    assert refused.exit_code == 2 and "loss" in refused.stderr and "--resume under other settings" in refused.stderr


ADD_REF = "add it with `rrhf score FILE --scorer logprob --model BASE --length-penalty 0 --as ref --keep-score`"


def _row(i, refs):
    responses = [{"text": t, "score": float(j)} | ({} if ref is None else {"scores": {"ref": ref}})
                 for j, (t, ref) in enumerate(zip(TEXTS[:2], refs, strict=True))]
    return {"id": f"q{i}", "prompt": PROMPTS[i], "responses": responses}


@pytest.mark.parametrize(("rows", "line", "problem"), [
    ([_row(0, [None, None])], 1, f"'responses[0]' has no scores.ref for --reference ref; {ADD_REF}"),
    ([_row(0, [-1.0, -2.0]), _row(1, [-3.0, None])], 2,
     f"'responses[1]' has no scores.ref for --reference ref; {ADD_REF}"),
])
def test_a_missing_reference_is_bad_input_naming_the_command(tiny_models, write_jsonl, tmp_path, cli, rows, line,
                                                             problem):
    path = write_jsonl("rows.jsonl", rows)
    out = tmp_path / "out"
    result = cli("train", path, "-o", out, "--model", tiny_models.policy, "--loss", "listmle", "--reference", "ref")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: {path}:{line}: {problem}"
    assert not out.exists()


def test_a_reference_on_cut_responses_is_warned_of(tiny_models, write_jsonl, tmp_path, cli):
    path = write_jsonl("rows.jsonl", [_row(0, [-30.0, -40.0]) | {"responses": [
        {"text": "one two three four five six seven", "score": 1.0, "scores": {"ref": -30.0}},
        {"text": "no", "score": 0.0, "scores": {"ref": -5.0}}]}])
    result = cli("train", path, "-o", tmp_path / "out", "--model", tiny_models.policy, "--loss", "dpo",
                 "--reference", "ref", "--max-length", "8", "--max-steps", "1")
    assert result.exit_code == 0, result.stderr
    assert "prompts or responses were cut to --max-length 8; their scores.ref must have been computed" in result.stderr


@pytest.mark.parametrize("ranked", [False, True])
def test_a_reference_scored_under_another_cut_is_refused(tiny_models, scored, tmp_path, cli, ranked):
    """The metas lead back to the score run that wrote scores.ref (through rank too): scored whole (the default
    --max-length) but cut here, training would compare log-probs of other tokens. Scored at train's length: no
    word of it."""
    runs = {}
    for length in ("2048", "8"):
        with_ref = tmp_path / f"ref-{length}.jsonl"
        assert cli("score", scored, "-o", with_ref, "--scorer", "logprob", "--model", tiny_models.policy,
                   "--length-penalty", "0", "--as", "ref", "--keep-score", "--max-length", length).exit_code == 0
        if ranked:
            assert cli("rank", with_ref, "-o", tmp_path / f"ranked-{length}.jsonl").exit_code == 0
            with_ref = tmp_path / f"ranked-{length}.jsonl"
        out = tmp_path / f"out-{length}"
        runs[length] = (cli("train", with_ref, "-o", out, "--model", tiny_models.policy, "--loss", "dpo",
                            "--reference", "ref", "--max-length", "8", "--max-steps", "1"), out)
    refused, out = runs["2048"]
    assert refused.exit_code == 2 and not out.exists()
    error = [line for line in refused.stderr.splitlines() if line.startswith("rrhf: error:")]
    assert error == refused.stderr.strip().splitlines()[-1:]  # one line, the last, after the data was read
    assert error[0].startswith("rrhf: error: --reference ref: scores.ref were computed at --max-length 2048 (")
    assert "train with --max-length 2048, or score again" in error[0]
    same, _ = runs["8"]
    assert same.exit_code == 0, same.stderr
    assert "scores.ref" not in same.stderr


def test_a_non_finite_reference_is_bad_input(tiny_models, write_jsonl, tmp_path, cli):
    path = write_jsonl("rows.jsonl", [json.dumps(_row(0, [-1.0, -2.0])).replace("-2.0", "-Infinity")])
    result = cli("train", path, "-o", tmp_path / "out", "--model", tiny_models.policy, "--loss", "lipo",
                 "--reference", "ref")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"rrhf: error: {path}:1:") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pro_on_pairs_without_scores_is_bad_input(tiny_models, write_jsonl, tmp_path, cli):
    pairs = write_jsonl("pairs.jsonl", [{"prompt": "Q", "chosen": "good answer", "rejected": "bad"}])
    result = cli("train", pairs, "-o", tmp_path / "out", "--model", tiny_models.policy, "--loss", "pro")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"rrhf: error: {pairs}:1: --loss pro ranks by scores and this row's texts have "
                                     "none; run `rrhf score` on this file first")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "says"), [
    (["--loss", "dpo"], "--loss dpo needs --reference NAME"),
    (["--loss", "dpo", "--reference", "ref", "--beta", "0"], "--beta"),
    (["--loss", "simpo", "--beta", "-1"], "--beta"),
    (["--loss", "pro", "--beta", "1"], "--loss pro has no beta"),
    (["--loss", "dpo", "--reference", "ref", "--gamma", "1"], "--gamma is for --loss simpo"),
    (["--reference", "ref"], "--loss rrhf uses no reference"),
    (["--reference-model", "m"], "--reference-model: --loss rrhf uses no reference"),
    (["--loss", "dpo", "--reference", "ref", "--reference-model", "m"], "exclude each other"),
    (["--loss", "simpo", "--margin", "0.5"], "--margin is the rrhf loss's; --loss simpo has none"),
    (["--loss", "pro", "--rank-loss", "logistic"], "--rank-loss is the rrhf loss's"),
    (["--loss", "simpo", "--sft-sources", "gold", "--sft-weight", "0"], "which --sft-weight 0 turns off"),
    (["--sft-sources", "gold,,people"], "names must not be empty"),
])
def test_bad_loss_settings_are_refused_in_one_line(tiny_models, scored, tmp_path, cli, flags, says):
    result = cli("train", scored, "-o", tmp_path / "out", "--model", tiny_models.policy, *flags)
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_reference_model_with_another_tokenizer_is_refused(tiny_models, scored, tmp_path, cli):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_models.policy, other)
    template = other / "chat_template.jinja"
    template.write_text("{{ 'Q: ' }}" + template.read_text())  # other prompt ids for the same messages
    result = cli("train", scored, "-o", tmp_path / "out", "--model", tiny_models.policy, "--loss", "dpo",
                 "--reference-model", other)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(f"--reference-model {other}: its tokenizer is not --model's, so it would "
                                          "read other tokens")
    assert not (tmp_path / "out" / "meta.json").exists()


def _sourced(write_jsonl, best_sources):
    """One query per entry: answers from `policy` (scores 0, 1) and `gold` (score 2 where it is the best, else
    -1), so `best_sources` says whose answer is each query's best."""
    return write_jsonl("sourced.jsonl", [
        {"id": f"q{i}", "prompt": prompt, "responses": [
            {"text": TEXTS[0], "source": "policy", "score": 0.0},
            {"text": TEXTS[1], "source": "policy", "score": 1.0},
            {"text": TEXTS[2], "source": "gold", "score": 2.0 if best == "gold" else -1.0}]}
        for i, (prompt, best) in enumerate(zip(PROMPTS, best_sources, strict=True))
    ])


def test_sft_sources_learn_only_the_named_sources_best_answers(tiny_models, write_jsonl, tmp_path, cli):
    """Gold is the best of q0 and q1, a policy answer of q2. `--sft-sources gold` drops q2's SFT term (the first
    step's loss falls, every other figure the same); naming every source is the same run as naming none."""
    data = _sourced(write_jsonl, ["gold", "gold", "policy"])
    common = ["--model", tiny_models.policy, "--loss", "simpo", "--max-steps", "2", "--lr", "1e-2",
              "--logging-steps", "1", "--queries-per-batch", "3"]
    runs = {}
    for name, flags in (("every", ["--sft-weight", "1"]), ("both", ["--sft-sources", "policy,gold,policy"]),
                        ("gold", ["--sft-sources", "gold"])):
        result = cli("train", data, "-o", tmp_path / name, *common, *flags)
        assert result.exit_code == 0, result.stderr
        runs[name] = read_jsonl(tmp_path / name / "metrics.jsonl")
    assert "the SFT term learns the best response of 2 of 3 queries (from gold)" in result.stderr
    meta = json.loads((tmp_path / "gold" / "meta.json").read_text())
    assert (meta["config"]["sft_sources"], meta["config"]["sft_weight"]) == (["gold"], 1.0)  # 1: named sources
    assert meta["counts"]["queries_sft"] == 2
    named = json.loads((tmp_path / "both" / "meta.json").read_text())["config"]["sft_sources"]
    assert named == ["gold", "policy"]  # a set of names, whatever their order or repeats
    for every, both in zip(runs["every"], runs["both"], strict=True):
        assert {k: both[k] for k in ("loss", "rank_loss", "sft_loss")} == pytest.approx(
            {k: every[k] for k in ("loss", "rank_loss", "sft_loss")}, rel=1e-6)
    first_every, first_gold = runs["every"][0], runs["gold"][0]
    assert first_gold["rank_loss"] == pytest.approx(first_every["rank_loss"], rel=1e-6)
    assert first_gold["sft_loss"] == pytest.approx(first_every["sft_loss"], rel=1e-6)  # logged over every query
    assert first_gold["loss"] < first_every["loss"] - 1e-3


@pytest.mark.parametrize("pairs", [False, True])
def test_sft_sources_that_no_response_comes_from_are_refused(tiny_models, write_jsonl, tmp_path, cli, pairs):
    if pairs:
        data = write_jsonl("pairs.jsonl", [{"prompt": "Q", "chosen": "good answer", "rejected": "bad"}])
        says = f"rrhf: error: {data}:1: preference rows name no source but chosen and rejected"
    else:
        data = _sourced(write_jsonl, ["gold", "policy", "policy"])
        says = f"rrhf: error: --sft-sources people: no response of {data} comes from that source"
    out = tmp_path / "out"
    result = cli("train", data, "-o", out, "--model", tiny_models.policy, "--sft-sources", "people")
    assert result.exit_code == 2
    # Refused once the input is read (the refusal of pairs is the reading's own): no step, no model.
    assert result.stderr.strip().splitlines()[-1].startswith(says), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_sft_sources_whose_answers_never_win_are_warned_of_and_train(tiny_models, write_jsonl, tmp_path, cli):
    data = _sourced(write_jsonl, ["policy", "policy", "policy"])
    out = tmp_path / "out"
    result = cli("train", data, "-o", out, "--model", tiny_models.policy, "--sft-sources", "gold", "--max-steps", "1")
    assert result.exit_code == 0, result.stderr
    assert "--sft-sources gold: no query's best response comes from that source" in result.stderr
    counts = json.loads((out / "meta.json").read_text())["counts"]
    assert (counts["responses_sft"], counts["queries_sft"]) == (3, 0)
