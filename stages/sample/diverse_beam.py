"""Diverse beam search (Vijayakumar et al., 2016): k groups of beams decoded step by step, where each group
pays a Hamming diversity penalty for every token that earlier groups chose at the same step.

transformers 5 dropped group beam search from its core, so the hf backend carries this small version. Each
prompt is prefilled once and its KV cache is copied to every beam.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from stages.lm.kv_cache import cache_kwarg, positions, prefill

DEAD = -1.0e9  # score of a beam slot that must not be expanded
Hypothesis = tuple[float, list[int]]  # (length-normalised score, generated tokens)


@dataclass
class Group:
    """The finished hypotheses of one group of one prompt."""

    finished: list[Hypothesis] = field(default_factory=list)
    done: bool = False

    def add(self, score: float, tokens: list[int], keep: int) -> None:
        """Add a finished hypothesis, keeping the `keep` best."""
        self.finished.append((score, tokens))
        if len(self.finished) > keep:
            self.finished.remove(min(self.finished, key=lambda hyp: hyp[0]))


def group_beam_search(
    model: Any,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    groups: int,
    beams_per_group: int,
    max_new_tokens: int,
    diversity_penalty: float,
    length_penalty: float,
    eos: set[int],
    hits_stop: Callable[[list[int]], bool] | None = None,
) -> list[list[list[int]]]:
    """For each prompt, the best hypothesis of each group: (B, groups) lists of new tokens, without the end token.

    Scores are sums of penalised log-probs; a finished hypothesis is ranked by score / length ** length_penalty,
    with length counted in generated tokens (as transformers' beam search does).
    """
    batch, width = input_ids.shape[0], beams_per_group
    beams = groups * width  # rows per prompt, ordered group by group
    name = cache_kwarg(model)

    def is_end(history: list[int], token: int) -> bool:
        return token in eos or (hits_stop is not None and hits_stop(history + [token]))

    with torch.no_grad():
        out = prefill(model, input_ids, mask)
        cache = out[name]
        cache.batch_repeat_interleave(beams)
        logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1).repeat_interleave(beams, dim=0)  # (B*N, V)
        mask = mask.repeat_interleave(beams, dim=0)
        next_position = positions(mask)[:, -1:] + 1  # (B*N, 1)
        vocab = logprobs.shape[-1]
        # Only the first beam of each group is alive at the start, so a group does not hold k copies of one path.
        scores = torch.full((batch, beams), DEAD)
        scores[:, ::width] = 0.0
        tokens = torch.empty((batch * beams, 0), dtype=torch.long, device=input_ids.device)
        state = [[Group() for _ in range(groups)] for _ in range(batch)]
        for step in range(max_new_tokens):
            norm = (step + 1) ** length_penalty
            chosen = torch.zeros((batch, beams), dtype=torch.long)
            parents = torch.zeros((batch, beams), dtype=torch.long)
            new_scores = torch.full((batch, beams), DEAD)
            counts = torch.zeros((batch, vocab))  # how often earlier groups chose each token at this step
            step_logprobs = logprobs.view(batch, beams, vocab).cpu()
            histories = tokens.tolist()  # one device-to-host copy a step, not one per candidate
            for g in range(groups):
                span = slice(g * width, (g + 1) * width)
                penalised = step_logprobs[:, span] - diversity_penalty * counts[:, None, :]  # (B, W, V)
                candidates = (scores[:, span, None] + penalised).view(batch, width * vocab)
                top_scores, top_index = candidates.topk(2 * width, dim=1)  # 2W: enough for W beams beside W ends
                for b in range(batch):
                    filled = 0
                    ranked = zip(top_scores[b].tolist(), top_index[b].tolist(), strict=True)
                    for rank, (score, flat) in enumerate(ranked):
                        parent, token = divmod(flat, vocab)
                        history = histories[b * beams + g * width + parent]
                        if is_end(history, token):
                            # Only a top-W end counts, as in beam search; the rest are spare candidates.
                            if rank < width and not state[b][g].done:
                                kept = history if token in eos else history + [token]
                                state[b][g].add(score / norm, kept, width)
                            continue
                        slot = g * width + filled
                        chosen[b, slot], parents[b, slot], new_scores[b, slot] = token, g * width + parent, score
                        filled += 1
                        if filled == width:
                            break
                counts.scatter_add_(1, chosen[:, span], torch.ones((batch, width)))
            scores = new_scores
            rows = (torch.arange(batch)[:, None] * beams + parents).view(-1).to(tokens.device)
            tokens = torch.cat([tokens[rows], chosen.view(-1, 1).to(tokens.device)], dim=1)
            _mark_done(state, scores, width, norm)
            if step == max_new_tokens - 1 or all(group.done for row in state for group in row):
                break
            cache.reorder_cache(rows)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            out = model(
                input_ids=tokens[:, -1:],
                attention_mask=mask,
                position_ids=next_position,
                use_cache=True,
                **{name: cache},
            )
            cache = out[name]
            next_position = next_position + 1
            logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    return _best_per_group(state, scores, tokens, width, length_penalty)


def _mark_done(state: list[list[Group]], scores: torch.Tensor, width: int, norm: float) -> None:
    # A group is done once it holds `width` finished hypotheses that its best running beam cannot beat.
    for b, row in enumerate(state):
        for g, group in enumerate(row):
            if group.done or len(group.finished) < width:
                continue
            best_running = scores[b, g * width : (g + 1) * width].max().item() / norm
            group.done = min(score for score, _ in group.finished) >= best_running


def _best_per_group(
    state: list[list[Group]], scores: torch.Tensor, tokens: torch.Tensor, width: int, length_penalty: float
) -> list[list[list[int]]]:
    beams = scores.shape[1]
    norm = tokens.shape[1] ** length_penalty
    results = []
    for b, row in enumerate(state):
        per_prompt = []
        for g, group in enumerate(row):
            if not group.done:
                # Out of steps: unfinished beams compete with the finished ones at their current length.
                for j in range(g * width, (g + 1) * width):
                    if scores[b, j] > DEAD / 2:
                        group.add(scores[b, j].item() / norm, tokens[b * beams + j].tolist(), width)
            fallback = (0.0, tokens[b * beams + g * width].tolist())
            per_prompt.append(max(group.finished, key=lambda hyp: hyp[0], default=fallback)[1])
        results.append(per_prompt)
    return results
