"""Settings of `rrhf score`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationInfo, field_validator, model_validator

from stages.engines.settings import ApiSettings, VllmSettings
from stages.runtime.config import borrowed, flag_of, setting
from stages.runtime.runs import FailurePolicy
from stages.score.judge_request import MaxTokensParam, TemperatureChoice
from stages.score.registry import SCORERS

RmFormat = Literal["chat", "pair", "concat"]
RmHead = Literal["auto", "classifier", "value-head"]


class ScoreConfig(VllmSettings, ApiSettings, FailurePolicy):
    """Settings of `rrhf score`."""

    scorer: str = setting(
        description="How a response gets its score: reward-model, judge (an LLM behind an API), logprob (a "
        "policy's log-prob), python (a function).",
        metavar="|".join(SCORERS),
        deprecated=("backend",),
    )
    model: str | None = setting(None, description="Reward model, policy (logprob) or judge model name.", path="local")
    as_name: str | None = setting(None, "Also keep the value under scores.NAME.", flags=("--as",), metavar="NAME")
    primary: str | None = setting(None, description="Which scores.NAME becomes `score` (default: this run's value).")
    keep_score: bool = setting(
        False, description="Write only scores.NAME (--as), leaving each response's `score` as it was: a reference "
        "log-prob for `rrhf train --reference`, say, beside the score that ranks."
    )
    batch_size: int | None = setting(
        None,  # filled in after validation, so it is always set once the config exists
        ge=1,
        description="Sequences per forward pass; records per journal batch (unset: 16; 256 with --engine vllm, "
        "whose scheduler batches for itself).",
    )
    max_length: int = setting(
        2048, ge=8, description="Longest scored sequence (at most the model's context); the prompt is cut first."
    )
    # reward-model
    rm_format: RmFormat = setting(
        "chat", description="RM input: its chat template, a (prompt, response) text pair, or plain concatenation."
    )
    rm_head: RmHead = setting(
        "auto",
        description="Reward-model head: a one-label sequence classifier, or a causal LM with a value head "
        "(TRL v_head.summary.*, OpenRLHF value_head.*); auto picks by the checkpoint's files.",
    )
    engine: Literal["hf", "vllm"] = setting(
        "hf",
        "Where the reward model or the logprob policy runs: hf (transformers, in-process), or vllm (on a GPU).",
        former_values=(("transformers", "hf"),),
    )
    sort_by_length: bool = setting(True, description="Batch sequences of similar length together.")
    # reward-model and logprob
    pack_prompt: Literal["auto", "on", "off"] = setting(
        "auto", description="Encode each prompt once for its k responses (shared-prompt attention; vllm: prefix "
        "caching)."
    )
    bf16: bool | None = setting(None, description="bfloat16 weights; default: on CUDA only.")
    length_penalty: float = setting(1.0, ge=0, description="logprob: alpha in logp / |y|^alpha.")
    # python
    fn: str | None = setting(
        None, description="python: module:function or path/to/file.py:function, (prompt, response) -> float.",
        path="fn",
    )
    # ApiSettings' timeout, described for the python scorer too, which honours it only where it is given.
    timeout: float = borrowed(
        ApiSettings,
        "timeout",
        description="API: seconds before a request counts as timed out. python: where given, seconds a call may "
        "take before that response fails (unset: no limit).",
    )
    # judge
    judge_template: Path | None = setting(None, description="judge: a rubric template replacing the built-in one.",
                                          path="file")
    judge_mode: Literal["pointwise", "listwise"] = setting(
        "pointwise", description="judge: one call per response, or all k responses of a prompt in one call."
    )
    judge_shuffle: bool = setting(
        True, description="judge, listwise: show each prompt's responses in a seeded shuffled order (position bias)."
    )
    judge_orders: int = setting(
        1, ge=1, description="judge, listwise: average the scores of N different orders of the responses."
    )
    judge_reasks: int = setting(
        2, ge=0, description="judge: times an unreadable answer is asked for again (apart from --max-retries)."
    )
    max_tokens: int = setting(512, ge=1, description="judge: longest answer.")
    judge_max_tokens_param: MaxTokensParam = setting(
        "auto",
        description="judge: the request field of --max-tokens; reasoning models take max_completion_tokens "
        "(auto: max_tokens, switching once if the server refuses it).",
    )
    judge_temperature: TemperatureChoice = setting(
        "auto",
        description="judge: send temperature 0, or omit it (reasoning models refuse it); auto: 0, dropped once "
        "if the server refuses it.",
    )
    seed: int = setting(0, description="Seed (judge sampling where the server supports it).")

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str) -> str:
        return SCORERS.check(value)

    @model_validator(mode="after")
    def _needs(self, info: ValidationInfo) -> ScoreConfig:
        def flag(name: str) -> str:  # as the running command spells it (eval: --scorer-model)
            return flag_of(type(self), info, name)

        scorer, engine = f"{flag('scorer')} {self.scorer}", flag("engine")
        if self.keep_score and (not self.as_name or self.primary):
            raise ValueError(f"{flag('keep_score')} needs {flag('as_name')} NAME and no {flag('primary')}")
        if self.scorer == "python" and not self.fn:
            raise ValueError(f"{scorer} needs {flag('fn')} module:function or path.py:function")
        if SCORERS[self.scorer].needs_model and not self.model:
            raise ValueError(f"{scorer} needs {flag('model')}")
        if self.judge_template is not None and not self.judge_template.is_file():
            raise ValueError(f"{flag('judge_template')} {self.judge_template}: no such file")
        if self.judge_orders > 1 and (self.judge_mode != "listwise" or not self.judge_shuffle):
            raise ValueError(f"{flag('judge_orders')} above 1 needs {flag('judge_mode')} listwise and "
                             f"{flag('judge_shuffle')}")
        if self.rm_head == "value-head" and (self.engine == "vllm" or self.rm_format == "pair"):
            raise ValueError(f"{flag('rm_head')} value-head runs on {engine} hf with {flag('rm_format')} chat or "
                             "concat")
        if self.engine == "vllm" and self.scorer not in ("reward-model", "logprob"):
            raise ValueError(f"{engine} vllm is for {flag('scorer')} reward-model or logprob; {scorer} runs on its own")
        if self.batch_size is None:
            self.batch_size = 256 if self.engine == "vllm" else 16
        return self
