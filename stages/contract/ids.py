"""Stable ids and seeds derived from content, so reruns, resumes and merges line up."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def prompt_id(prompt: Any) -> str:
    """A 16-hex-digit id from the prompt's canonical JSON; equal prompts give equal ids."""
    canonical = json.dumps(prompt, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class IdAssigner:
    """Gives derived ids, suffixing repeats of the same prompt (`-2`, `-3`) in file order."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, prompt: Any) -> str:
        base = prompt_id(prompt)
        count = self._seen.get(base, 0) + 1
        self._seen[base] = count
        return base if count == 1 else f"{base}-{count}"


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the run's seed and names, stable across processes (unlike `hash`)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
