"""What the efficacy bench keeps in OUT, and when it reads it back: each task's round of samples (sampled, scored,
ranked both ways), each model's answers to the held-out prompts, and each finished run's `trained.json`. A file is
read back only where it was made from the same input with the same settings; otherwise it is made again."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.demo_real import EAGER
from stages.contract.artifacts import file_sha256
from stages.contract.inputs import load_records
from stages.contract.meta import read_meta
from stages.eval.config import EvalConfig
from stages.eval.report import EvalReport
from stages.eval.run import run_eval
from stages.rank.config import RankConfig
from stages.rank.run import run_rank
from stages.report.paired import prompt_means
from stages.sample.config import SampleConfig
from stages.sample.run import run_sample
from stages.score.config import ScoreConfig
from stages.score.run import run_score

K, TEMPERATURE = 4, 0.8
MAX_LENGTH = 512
EVAL_SEED = 1000
# The sampling settings that make one round differ from another (the model and engine are the bench's own).
ROUND_SETTINGS = ("k", "seed", "temperature", "max_new_tokens", "include_field")


@dataclass(frozen=True)
class Task:
    """Prompts to train on, held-out prompts with reference answers, and the reward."""

    name: str
    prompts: Path
    heldout: Path
    reward: str
    max_new_tokens: int
    written: str | None = None  # the source of the prompt file's own answers, ranked beside the policy's samples


def one_round(task: Task, initial: Path, folder: Path, engine: str, seed: int,
              reuse: bool = False, k: int = K) -> tuple[Path, Path, int]:
    """Sample and score the training prompts with the initial model, keep its log-prob of each answer as the
    reference, and rank two ways: the listwise file and the best-worst pairs. Returns both and the prompt count."""
    sample = SampleConfig(model=str(initial), engine=engine, k=k, max_new_tokens=task.max_new_tokens,
                          temperature=TEMPERATURE, seed=seed + 1, source="policy-0",
                          include_field=[task.written] if task.written else [], **EAGER)
    # An edited prompt file, another --seed or another k is sampled anew.
    settings = {name: value for name, value in sample.model_dump(mode="json").items() if name in ROUND_SETTINGS}
    if reuse and (folder / "pairs.jsonl.meta.json").is_file() and \
            made_from(folder / "samples.jsonl", task.prompts, settings):
        kept = json.loads((folder / "pairs.jsonl.meta.json").read_text())["counts"]["prompts_kept"]
        return folder / "ranked.jsonl", folder / "pairs.jsonl", kept
    run_sample(str(task.prompts), folder / "samples.jsonl", sample, force=True)
    run_score(str(folder / "samples.jsonl"), folder / "rewarded.jsonl", ScoreConfig(scorer="python", fn=task.reward),
              force=True)
    run_score(str(folder / "rewarded.jsonl"), folder / "scored.jsonl", ScoreConfig(
        scorer="logprob", model=str(initial), length_penalty=0.0, as_name="ref", keep_score=True, max_length=MAX_LENGTH,
    ), force=True)
    listwise = run_rank(str(folder / "scored.jsonl"), folder / "ranked.jsonl", RankConfig())
    best_worst = run_rank(str(folder / "scored.jsonl"), folder / "pairs.jsonl",
                          RankConfig(format="pairs", pairs="best-worst"))
    # Both keep the prompts with two different scores; a mismatch would mean the trainers see different prompts.
    assert listwise["prompts_kept"] == best_worst["prompts_kept"] == best_worst["pairs"]
    return folder / "ranked.jsonl", folder / "pairs.jsonl", best_worst["prompts_kept"]


def evaluate(task: Task, model: Path, folder: Path, engine: str, k: int, reuse: bool = False) -> dict[str, Any]:
    """`rrhf eval` of one model on the held-out prompts: its per-prompt rewards, mean answer length (words) and
    the perplexity of the reference answers."""
    # An edited held-out file or another --eval-k is answered anew.
    if reuse and answered(folder, task.heldout, k):
        return _figures(EvalReport.model_validate_json((folder / "report.json").read_text()), folder)
    config = EvalConfig(
        model=str(model),
        sample={"k": k, "engine": engine, "temperature": TEMPERATURE, "max_new_tokens": task.max_new_tokens,
                "seed": EVAL_SEED, **EAGER},
        score={"scorer": "python", "fn": task.reward},
    )
    return _figures(run_eval(str(task.heldout), folder, config, force=True), folder)


def answered(folder: Path, heldout: Path, k: int) -> bool:
    """Whether `folder` holds a finished `rrhf eval` of the prompts in `heldout` as they are now, k answers each."""
    return (folder / "report.json").is_file() and made_from(folder / "samples-model.jsonl", heldout, {"k": k})


def made_from(artifact: Path, source: Path, settings: Mapping[str, Any]) -> bool:
    """Whether `artifact`'s meta says it was made from `source` as it is now (its first input's content hash) with
    these config settings."""
    meta = read_meta(artifact)
    return meta is not None and bool(meta.inputs) and meta.inputs[0].sha256 == file_sha256(source) and \
        all(meta.config.get(name) == value for name, value in settings.items())


def same_round(trained: Mapping[str, Any], round_sha: str) -> bool:
    """Whether a run's `trained.json` says it trained on the round whose ranked file hashes to `round_sha`; one
    written before the round was recorded is taken as trained on it.

    >>> same_round({"round": "ab"}, "ab"), same_round({"round": "ab"}, "cd"), same_round({"steps": 12}, "cd")
    (True, False, True)
    """
    return trained.get("round", round_sha) == round_sha


def model_goes(keep_models: bool, trained: Mapping[str, Any], trained_now: bool) -> bool:
    """Whether an evaluated run's model is deleted: unless --keep-models, one this run trained, or one an earlier run
    without --keep-models trained and was killed before evaluating; a model kept on purpose stays.

    >>> model_goes(False, {"kept": False}, trained_now=True), model_goes(True, {"kept": True}, trained_now=True)
    (True, False)
    >>> model_goes(False, {"kept": False}, trained_now=False)  # an earlier run died between training and eval
    True
    >>> model_goes(False, {"kept": True}, trained_now=False), model_goes(False, {}, trained_now=False)
    (False, False)
    """
    # A trained.json from before "kept" was recorded came from a run that kept its model: it is read, not deleted.
    return not keep_models and not trained.get("kept", not trained_now)


def _figures(report: EvalReport, folder: Path) -> dict[str, Any]:
    records = load_records(folder / "scored-model.jsonl").records
    scores = {r.id: [x.score for x in r.responses if x.score is not None] for r in records}
    words = [len(x.text.split()) for r in records for x in r.responses]
    return {"per_prompt": prompt_means(scores), "reward": report.model.mean_reward,
            "words": statistics.fmean(words), "reference_perplexity": report.model.reference_perplexity}
