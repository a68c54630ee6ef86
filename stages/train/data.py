"""Records into training queries before tokenisation (`Candidates`): responses, rewards and ranking pairs. Pure:
`stages.train.prepare` streams a file of any size through these.

A scored file means every pair of a prompt's responses whose scores differ (the paper's loss). A ranked
file's `pairs` are the pairs `rrhf rank` chose. Preference rows (TRL, Anthropic HH) that share a prompt
form one query: its responses are the rows' distinct texts and its pairs the rows' (chosen, rejected).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stages.contract.errors import BadInput, Location
from stages.contract.schema import Prompt, Record, best_index
from stages.train.losses.catalog import REFERENCE_COMMAND

PREFERENCE_FORMATS = ("trl-preference", "hh")
PlainPrompt = str | list[dict[str, Any]]
"""A prompt as plain data (a string, or messages as dicts): what a chat template takes."""


@dataclass
class Candidates:
    """One query before tokenisation: a prompt, its response texts, their rewards and chosen pairs, if any."""

    prompt: Prompt | PlainPrompt
    texts: list[str]
    rewards: list[float]
    pairs: list[tuple[int, int]] | None = None
    refs: list[float] | None = None  # each response's reference log-prob, where the loss reads one
    ended: list[bool] | None = None  # whether each response ended (not cut by the sampler's limit); None: all did
    sft_targets: list[bool] | None = None  # whether each response may be the SFT target; None: every one may

    def endings(self) -> list[bool]:
        """Whether each response ended, so it is learned with its EOS."""
        return self.ended if self.ended is not None else [True] * len(self.texts)

    def learns_best(self) -> bool:
        """Whether the SFT term learns this query's best response: the first of the highest reward, as the losses
        pick it (`best_index`), is an SFT target."""
        return self.sft_targets is None or self.sft_targets[best_index(self.rewards)]


@dataclass(frozen=True)
class DataNeeds:
    """What the loss needs of each record beyond a ranking: `reference`, the scores.NAME every response must carry
    (its summed log-prob under the reference model); `scores`, rewards that are scores (not wins over pairs);
    `sft_sources`, each response's source, where the SFT term learns only those sources' best answers."""

    reference: str | None = None
    scores: bool = False
    loss: str = "rrhf"  # named in the messages
    sft_sources: tuple[str, ...] = ()  # the sources whose best answers the SFT term learns; (): every source's


@dataclass(frozen=True)
class PreferencePair:
    """One preference row's two texts and their scores (None where the row has none)."""

    chosen: str
    rejected: str
    score_chosen: float | None = None
    score_rejected: float | None = None


def listwise_candidates(record: Record, where: Location, needs: DataNeeds = DataNeeds()) -> Candidates:
    """A scored or ranked record as one query: its scores, its `pairs` when `rrhf rank` chose them, and the
    reference log-probs `needs` names. BadInput where the record lacks what `needs` asks."""
    if not record.responses:
        raise BadInput(where, "has no responses to train on")
    pairs = _pairs_field(record.extra.get("pairs"), len(record.responses), where)
    scores = [r.score for r in record.responses]
    refs = reference_scores(record, where, needs.reference) if needs.reference else None
    if all(s is not None for s in scores):
        rewards: list[float] = scores  # type: ignore[assignment]
    elif needs.scores:
        raise BadInput(where, f"--loss {needs.loss} ranks by scores and 'responses[{scores.index(None)}]' has none; "
                       "run `rrhf score` on this file first")
    elif pairs is not None:
        rewards = net_wins(len(record.responses), pairs)
    elif sorted(r.source for r in record.responses) == ["chosen", "rejected"] and all(s is None for s in scores):
        # An unscored preference pair: its order is in `source`.
        rewards = [1.0 if r.source == "chosen" else 0.0 for r in record.responses]
    else:
        missing = scores.index(None)
        raise BadInput(where, f"'responses[{missing}]' has no score; run `rrhf score` on this file first")
    targets = [r.source in needs.sft_sources for r in record.responses] if needs.sft_sources else None
    return Candidates(record.prompt, [r.text for r in record.responses], rewards, pairs, refs,
                      [r.ended for r in record.responses], targets)


def reference_scores(record: Record, where: Location, name: str) -> list[float]:
    """Each response's scores.NAME (the reference log-prob); BadInput naming the command that adds it where a
    response has none (the schema has already refused a non-finite one)."""
    values = [(r.scores or {}).get(name) for r in record.responses]
    if None in values:
        raise BadInput(where, f"'responses[{values.index(None)}]' has no scores.{name} for --reference {name}; add it "
                       f"with `{REFERENCE_COMMAND.format(name=name)}`")
    return values  # type: ignore[return-value]


def plain_prompt(prompt: Prompt) -> PlainPrompt:
    """The prompt as JSON data: a string, or its messages with all their fields."""
    return prompt if isinstance(prompt, str) else [m.model_dump(mode="json") for m in prompt]


def group_key(record: Record) -> str:
    """What preference rows share when they belong to one query: `prompt_id` where rows carry it, else the prompt."""
    return str(record.extra.get("prompt_id") or json.dumps(plain_prompt(record.prompt)))


def preference_pair(record: Record, where: Location) -> PreferencePair:
    """A preference row's (chosen, rejected) texts and scores; BadInput unless it has exactly one of each."""
    by_source = {r.source: r for r in record.responses}
    if set(by_source) != {"chosen", "rejected"} or len(record.responses) != 2:
        raise BadInput(where, "a preference row needs one chosen and one rejected response")
    chosen, rejected = by_source["chosen"], by_source["rejected"]
    return PreferencePair(chosen.text, rejected.text, chosen.score, rejected.score)


def check_preference(pair: PreferencePair, needs: DataNeeds, where: Location) -> None:
    """BadInput where a preference row cannot give what `needs` asks: a reference (rows carry no scores.NAME),
    sources (rows have only chosen and rejected), or scores on both texts."""
    if needs.reference:
        raise BadInput(where, f"preference rows carry no scores.{needs.reference} for --reference; add it with "
                       f"`{REFERENCE_COMMAND.format(name=needs.reference)}`, which writes rrhf records")
    if needs.sft_sources:
        raise BadInput(where, "preference rows name no source but chosen and rejected, so --sft-sources has none to "
                       "pick; it needs rrhf records, whose responses carry their `source`")
    if needs.scores and (pair.score_chosen is None or pair.score_rejected is None):
        raise BadInput(where, f"--loss {needs.loss} ranks by scores and this row's texts have none; run `rrhf score` "
                       "on this file first")


def preference_query(prompt: Prompt | PlainPrompt, rows: Sequence[PreferencePair]) -> Candidates:
    """The rows of one prompt as one query: the distinct texts in order of appearance, each row's (chosen, rejected)
    as a pair. Rewards are the scores where every text has one (its first), else wins minus losses."""
    texts: list[str] = []
    scores: dict[int, float | None] = {}
    pairs: list[tuple[int, int]] = []
    for row in rows:
        indices = []
        for text, score in ((row.chosen, row.score_chosen), (row.rejected, row.score_rejected)):
            if text not in texts:
                texts.append(text)
            index = texts.index(text)
            scores.setdefault(index, score)
            indices.append(index)
        if indices[0] != indices[1]:  # a row whose two texts are equal carries no preference
            pairs.append((indices[0], indices[1]))
    known = [scores[i] for i in range(len(texts))]
    rewards = known if all(s is not None for s in known) else net_wins(len(texts), pairs)
    return Candidates(prompt, texts, rewards, pairs)  # type: ignore[arg-type]


def net_wins(n: int, pairs: Sequence[tuple[int, int]]) -> list[float]:
    """Each response's wins minus losses over the pairs: a reward that ranks as the pairs do."""
    wins = [0.0] * n
    for better, worse in pairs:
        wins[better] += 1.0
        wins[worse] -= 1.0
    return wins


def _pairs_field(value: Any, n: int, where: Location) -> list[tuple[int, int]] | None:
    # A ranked file's `pairs`: [better, worse] indices into the record's responses.
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadInput(where, "'pairs' must be a list of [better, worse] response indices")
    pairs = []
    for i, pair in enumerate(value):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(type(x) is int for x in pair)
        if not ok or not all(0 <= x < n for x in pair) or pair[0] == pair[1]:
            raise BadInput(where, f"'pairs[{i}]' must be two different response indices below {n}, got {pair!r}")
        pairs.append((pair[0], pair[1]))
    return pairs
