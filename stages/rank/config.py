"""Settings of `rrhf rank`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from stages.rank.ranking import Normalize, PairMode
from stages.runtime.config import setting


class RankConfig(BaseModel):
    """Settings of `rrhf rank`."""

    format: Literal["listwise", "pairs"] = setting(
        "listwise",
        description="listwise: sorted responses plus a `pairs` list; pairs: one TRL preference row per pair.",
    )
    pairs: PairMode = setting("all", description="Which (better, worse) pairs to form.")
    min_margin: float = setting(0.0, ge=0, description="Keep pairs whose score difference is at least this.")
    max_pairs_per_prompt: int | None = setting(None, ge=1, description="Sample at most this many pairs per prompt.")
    normalize: Normalize = setting("none", description="Per-prompt score normalisation, applied before the margin.")
    top_k: int | None = setting(None, ge=1, description="Keep the K best responses and the worst one.")
    seed: int = setting(0, description="Seed of the pair sampling.")
