"""The rank stage: read a scored file, rank each prompt, write listwise records or preference pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.contract.artifacts import Row
from stages.contract.errors import BadInput, Location
from stages.contract.formats import PAIR_FIELDS, InputOptions
from stages.contract.inputs import InputFile, InputPass
from stages.contract.schema import Record
from stages.rank.config import RankConfig
from stages.rank.ranking import Normalize, Ranked, rank_one
from stages.runtime.console import log
from stages.runtime.runs import StageRun


def run_rank(source: str, output: Path, config: RankConfig, inputs: InputOptions = InputOptions()) -> dict[str, int]:
    """Rank every prompt of `source` into `output`, streaming; returns the counts also written to the meta."""
    stream = InputFile(source, inputs).read()  # one pass, hashed as it streams: the meta names what it read
    run = StageRun("rank", config, output, [stream])
    counts: dict[str, int] = {}
    run.finish(rank_rows(stream, config, counts), counts)
    log.info(
        "rank: %d of %d prompts kept, %d pairs; dropped %d without a ranking signal, %d without a pair "
        "above the margin; %d duplicate responses removed",
        counts["prompts_kept"],
        counts["prompts_in"],
        counts["pairs"],
        counts["dropped_no_signal"],
        counts["dropped_no_pair"],
        counts["duplicate_responses"],
    )
    return counts


def rank_rows(source: InputPass, config: RankConfig, counts: dict[str, int]) -> Iterator[Row]:
    """The rows to write, one prompt at a time; fills `counts` with what was kept and dropped, and why, as it
    goes (complete once the rows are exhausted). BadInput at the end when no prompt could be ranked."""
    counts.update(prompts_in=0, prompts_kept=0, pairs=0, dropped_no_signal=0, dropped_no_pair=0,
                  duplicate_responses=0, cut_by_top_k=0)
    for where, record in source:
        counts["prompts_in"] += 1
        ranked = rank_one(
            [r.text for r in record.responses],
            _scores(record, where),
            config.pairs,
            config.min_margin,
            config.max_pairs_per_prompt,
            config.normalize,
            config.top_k,
            config.seed,
            record.id,
        )
        counts["duplicate_responses"] += ranked.duplicates
        counts["cut_by_top_k"] += ranked.cut_by_top_k
        if len(set(ranked.scores)) < 2:
            counts["dropped_no_signal"] += 1
            continue
        if not ranked.pairs:
            counts["dropped_no_pair"] += 1
            continue
        counts["prompts_kept"] += 1
        counts["pairs"] += len(ranked.pairs)
        listwise = _listwise(record, ranked, config.normalize)
        yield from _pair_rows(listwise) if config.format == "pairs" else [listwise]
    if not counts["prompts_kept"]:
        raise BadInput(source.source.spec, "no prompt has two responses with different scores; nothing to rank")


def _scores(record: Record, where: Location) -> list[float]:
    missing = [i for i, r in enumerate(record.responses) if r.score is None]
    if missing:
        raise BadInput(where, f"'responses[{missing[0]}]' has no score; run `rrhf score` on this file first")
    return [r.score for r in record.responses]  # type: ignore[misc]


def _listwise(record: Record, ranked: Ranked, how: Normalize) -> dict[str, Any]:
    row = record.to_json_dict()
    responses = []
    for position, index in enumerate(ranked.order):
        response = row["responses"][index]
        if how != "none":
            response = response | {"raw_score": response["score"], "score": ranked.scores[position]}
        responses.append(response)
    row["responses"] = responses
    row["pairs"] = [list(pair) for pair in ranked.pairs]
    return row


def _pair_rows(listwise: dict[str, Any]) -> list[dict[str, Any]]:
    # TRL's preference format, conversational when the prompt is; ids stay unique per line.
    carried = {k: v for k, v in listwise.items() if k not in ("id", "prompt", "responses", "pairs")}
    chat = isinstance(listwise["prompt"], list)
    responses = listwise["responses"]
    rows = []
    for better, worse in listwise["pairs"]:
        chosen, rejected = responses[better], responses[worse]
        rows.append(
            {
                "id": f"{listwise['id']}/{better}>{worse}",
                "prompt": listwise["prompt"],
                "chosen": [{"role": "assistant", "content": chosen["text"]}] if chat else chosen["text"],
                "rejected": [{"role": "assistant", "content": rejected["text"]}] if chat else rejected["text"],
                # score_chosen, score_rejected, then finish_reason_* only where the sampler gave one, so rows of
                # other tools' answers stay TRL's; the preference reader reads back the same PAIR_FIELDS.
                **{f"{field}_{name}": response[field] for field in PAIR_FIELDS
                   for name, response in (("chosen", chosen), ("rejected", rejected))
                   if response.get(field) is not None},
                "prompt_id": listwise["id"],
                **carried,
            }
        )
    return rows
