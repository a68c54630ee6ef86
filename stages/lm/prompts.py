"""A record's prompt in the form each consumer takes: token ids, chat messages, plain data or text. Pure."""

from __future__ import annotations

from typing import Any

from stages.contract.errors import UsageError
from stages.contract.schema import Prompt


def as_plain(prompt: Prompt) -> str | list[dict[str, Any]]:
    """The prompt as plain data: a string, or messages as dicts with all their fields (vLLM chat, user code)."""
    return prompt if isinstance(prompt, str) else [m.model_dump() for m in prompt]


def as_messages(prompt: Prompt, all_fields: bool = True) -> list[dict[str, Any]]:
    """Chat messages: a string prompt becomes one user turn. `all_fields=False` keeps only role and content,
    as strict API servers want them."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if all_fields:
        return [m.model_dump() for m in prompt]
    return [{"role": m.role, "content": m.content} for m in prompt]


def as_text(prompt: Prompt, capitalize: bool = False, separator: str = "\n") -> str:
    """The prompt as text: a string as it is, messages as `role: content` turns (`Role:` with `capitalize`)."""
    if isinstance(prompt, str):
        return prompt
    return separator.join(f"{m.role.capitalize() if capitalize else m.role}: {m.content}" for m in prompt)


def render_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: a string verbatim, messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        ids = list(tokenizer(prompt)["input_ids"])
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template(as_plain(prompt), add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here, 4.x a plain list.
        ids = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
    if not ids:
        # Nothing to condition on: start from the model's begin-of-text token like an empty chat would.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ids = [start]
    return ids


def cut_left(ids: list[int], limit: int | None) -> list[int]:
    """Keep the last `limit` tokens: the end of a prompt is what the response continues."""
    return ids if limit is None or len(ids) <= limit else ids[-limit:]


# A prompt's text is tokenised from a window at its end, so a huge prompt costs what its kept part costs. A token
# is rarely longer than a few characters; a window that holds too few tokens is doubled until it does.
CHARS_PER_TOKEN = 8
WINDOW_EXTRA = 256
# A window's first tokens may differ from the whole text's (a BOS, a prefix space the tokenizer adds, a run of
# spaces cut in two): these many are tokenised beyond `limit` and dropped.
SPARE_TOKENS = 16


def token_counts(tokenizer: Any, prompts: list[Prompt], limit: int | None) -> list[int]:
    """Each rendered prompt's token count, where a prompt longer than `limit` counts as limit + 1: enough to
    batch by length and count the cut, without tokenising a long prompt whole."""
    counts = []
    for prompt in prompts:
        ids, cut = render_tail(tokenizer, prompt, limit)
        counts.append(len(ids) + int(cut))
    return counts


def render_tail(tokenizer: Any, prompt: Prompt, limit: int | None) -> tuple[list[int], bool]:
    """`cut_left(render_ids(tokenizer, prompt), limit)` and whether that cut anything, tokenising only as much
    of the text's end as the kept tokens need. Messages are cut in their rendered text, so the chat template's
    generation prompt at the end stays whole."""
    if limit is None:
        return render_ids(tokenizer, prompt), False
    if isinstance(prompt, str):
        text, specials = prompt, True
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template(as_plain(prompt), add_generation_prompt=True, tokenize=False)
        text, specials = rendered, False  # as apply_chat_template tokenises: the template writes the specials

    def tail_from(start: int) -> list[int] | None:
        ids = tokenizer(text[start:], add_special_tokens=specials)["input_ids"]
        return list(ids[-limit:]) if len(ids) >= limit + SPARE_TOKENS else None

    width = limit * CHARS_PER_TOKEN + WINDOW_EXTRA
    while width < len(text):
        start = _word_start(text, len(text) - width)
        tail = tail_from(start)
        # A window starting where a word does (a space after a non-space) is tokenised as the whole text is from
        # its first word on. Elsewhere (inside a long run of letters or of spaces, where BPE pairs characters
        # from the run's start) it must agree with a window one character wider, else the window widens, up to
        # the whole text.
        earlier = _word_start(text, len(text) - width - 1)
        if tail is not None and (earlier == start or tail_from(earlier) == tail):
            return tail, True
        width *= 2
    ids = render_ids(tokenizer, prompt)  # the whole text: a window would hold it all
    return cut_left(ids, limit), len(ids) > limit


def _word_start(text: str, at: int) -> int:
    """`at`, moved on to the next whitespace within a few characters: where a tokenizer starts a word."""
    for index in range(at, min(at + 64, len(text))):
        if text[index].isspace():
            return index
    return at
