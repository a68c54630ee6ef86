"""Train uses the pairs it is given: a ranked file's `pairs`, preference rows grouped by prompt, and for a
scored file every pair whose scores differ. Grouping on tiny files, the loss by hand, the stage end to end."""

import json
from dataclasses import replace

import pytest
import torch

from stages.contract.errors import BadInput, Location
from stages.contract.inputs import InputFile
from stages.contract.schema import Record
from stages.lm.queries import Query
from stages.train.data import DataNeeds, listwise_candidates, net_wins
from stages.train.losses.common import LossBatch, LossSettings
from stages.train.losses.rrhf import rrhf_loss
from stages.train.prepare import candidates

HERE = Location("t.jsonl", 1)


def _row(prompt, chosen, rejected, **extra):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}  # a TRL preference row


def test_preference_rows_sharing_a_prompt_form_one_query(write_jsonl, tmp_path):
    rows = [_row("p", "a", "b"), _row("q", "x", "y"), _row("p", "a", "c"), _row("p", "b", "c"), _row("p", "c", "c")]
    first, second = candidates(InputFile(write_jsonl("pairs.jsonl", rows)).read(), tmp_path)
    assert (first.prompt, first.texts, first.pairs) == ("p", ["a", "b", "c"], [(0, 1), (0, 2), (1, 2)])
    assert first.rewards == [2.0, 0.0, -2.0]  # wins minus losses: SFT learns "a", the most preferred
    assert (second.texts, second.pairs, second.rewards) == (["x", "y"], [(0, 1)], [1.0, -1.0])


def test_preference_rows_group_by_prompt_id_and_keep_their_scores(write_jsonl, tmp_path):
    rows = [
        _row("p", "a", "b", prompt_id="k", score_chosen=3.0, score_rejected=1.0),
        _row("p2", "b", "c", prompt_id="k", score_chosen=1.0, score_rejected=0.5),
    ]
    [query] = candidates(InputFile(write_jsonl("pairs.jsonl", rows)).read(), tmp_path)
    assert (query.texts, query.pairs, query.rewards) == (["a", "b", "c"], [(0, 1), (1, 2)], [3.0, 1.0, 0.5])


def test_a_ranked_record_keeps_its_pairs_and_a_scored_one_means_all_pairs():
    scored = Record.model_validate({"id": "1", "prompt": "p", "responses": [
        {"text": "a", "score": 2.0}, {"text": "b", "score": 1.0}, {"text": "c", "score": 0.0}]})  # fmt: skip
    ranked = Record.model_validate(scored.to_json_dict() | {"pairs": [[0, 2]]})
    assert listwise_candidates(ranked, HERE).pairs == [(0, 2)]
    plain = listwise_candidates(scored, HERE)
    assert plain.pairs is None
    assert Query([1], [[2], [3], [4]], plain.rewards).ranking_pairs() == [(0, 1), (0, 2), (1, 2)]
    for bad in ([[0, 3]], [[1, 1]], [[0]], "0>1", [[0.0, 1]]):
        with pytest.raises(BadInput, match="pairs"):
            listwise_candidates(Record.model_validate(scored.to_json_dict() | {"pairs": bad}), HERE)
    assert net_wins(3, [(0, 2)]) == [1.0, 0.0, -1.0]


def test_sft_sources_mark_each_response_and_the_best_is_the_first_of_the_top_reward():
    """Rewards [1, 2, 2]: the losses' best is the first 2, response 1, from `policy`; `gold` alone names response 2."""
    record = Record.model_validate({"id": "1", "prompt": "p", "responses": [
        {"text": "a", "source": "gold", "score": 1.0}, {"text": "b", "source": "policy", "score": 2.0},
        {"text": "c", "source": "gold", "score": 2.0}]})  # fmt: skip
    assert listwise_candidates(record, HERE).sft_targets is None
    assert listwise_candidates(record, HERE).learns_best()
    gold = listwise_candidates(record, HERE, DataNeeds(sft_sources=("gold",)))
    assert (gold.sft_targets, gold.learns_best()) == ([True, False, True], False)
    assert listwise_candidates(record, HERE, DataNeeds(sft_sources=("policy", "people"))).learns_best()


def test_the_loss_uses_only_the_given_pairs():
    """p = [-1, -4, -3] (see test_loss.py). All pairs: hinge (0,1) 3 + (2,1) 1 + (2,0) 0 = 4. Given only
    (better 1, worse 0): 3. SFT (mean) on the best reward, response 1: 8 / 2 = 4."""
    batch = LossBatch(torch.tensor([-3.0, -8.0, -3.0]), torch.tensor([3, 2, 1]), torch.tensor([1.0, 2.0, 0.0]),
                      torch.tensor([0, 0, 0]))
    assert rrhf_loss(batch, LossSettings()).rank_loss.item() == pytest.approx(4.0)
    parts = rrhf_loss(replace(batch, pairs=torch.tensor([[1, 0]])), LossSettings())
    assert parts.rank_loss.item() == pytest.approx(3.0) and parts.sft_loss.item() == pytest.approx(4.0)
    assert (parts.rank_correct, parts.rank_pairs) == (0, 1)
    none = rrhf_loss(replace(batch, pairs=torch.zeros((0, 2), dtype=torch.long)), LossSettings())
    assert none.rank_loss.item() == 0.0 and none.rank_pairs == 0


SCORED = [
    {"id": f"q{i}", "prompt": prompt, "responses": [
        {"text": text, "source": "s", "score": float(score)} for text, score in zip(texts, scores, strict=True)]}
    for i, (prompt, texts, scores) in enumerate([
        ("Say hello.", ["hello there", "hi", "go away", "hey"], [3, 2, 0, 1]),
        ("Name a fruit.", ["apple", "pear", "rock"], [2, 2.5, -1]),
        ("Count to three.", ["one two three", "three", "1 2 3", "no"], [4, 1, 3, -2]),
    ])
]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("all", "listwise"), ("best-vs-rest", "listwise"), ("best-worst", "listwise"), ("adjacent", "listwise"),
     ("best-worst", "pairs"), ("all", "pairs")],
)  # fmt: skip
def test_train_sees_exactly_the_pairs_rank_chose(mode, fmt, tiny_models, write_jsonl, tmp_path, cli):
    scored = write_jsonl("scored.jsonl", SCORED)
    ranked = tmp_path / "ranked.jsonl"
    result = cli("rank", scored, "-o", ranked, "--pairs", mode, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    rank_pairs = json.loads(ranked.with_name("ranked.jsonl.meta.json").read_text())["counts"]["pairs"]
    out = tmp_path / "out"
    result = cli("train", ranked, "-o", out, "--model", tiny_models.policy, "--max-steps", "1")
    assert result.exit_code == 0, result.stderr
    counts = json.loads((out / "meta.json").read_text())["counts"]
    assert counts["pairs"] == rank_pairs and counts["queries"] == 3
    assert f"{rank_pairs} ranking pairs" in result.stderr


def test_a_scored_file_trains_on_every_pair(tiny_models, write_jsonl, tmp_path, cli):
    out = tmp_path / "out"
    result = cli("train", write_jsonl("scored.jsonl", SCORED), "-o", out, "--model", tiny_models.policy,
                 "--max-steps", "1")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "meta.json").read_text())["counts"]["pairs"] == 6 + 3 + 6
