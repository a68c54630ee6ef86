"""Settings of `rrhf train`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, field_validator, model_validator

from stages.runtime.config import comma_names, setting
from stages.train.losses.catalog import DEFAULTS, LOSS_NAMES, REFERENCE_COMMAND, LossName, defaults_help

if TYPE_CHECKING:  # the loss modules import torch, which `rrhf --help` must not pay for
    from stages.train.data import DataNeeds
    from stages.train.losses.common import LossSettings

RRHF_ONLY = {"length_penalty", "rank_loss", "margin"}
"""Settings of the rrhf loss alone: given with another loss they would be silently ignored."""


class TrainConfig(BaseModel):
    """Settings of `rrhf train`."""

    model: str = setting(description="Policy to fine-tune: a from_pretrained folder or hub name.", path="local")
    # The loss: RRHF's (arXiv 2304.05302, section 3) or another (stages/train/losses).
    loss: LossName = setting("rrhf", description=f"The loss: {', '.join(LOSS_NAMES)}; defaults of each: "
                             f"{defaults_help()}.")
    reference: str | None = setting(
        None, description="dpo, listmle, lipo: the scores.NAME holding each response's summed log-prob under the "
        f"reference model (added by `{REFERENCE_COMMAND.format(name='NAME')}`, at train's --max-length).",
        metavar="NAME",
    )
    reference_model: str | None = setting(
        None, description="dpo, listmle, lipo: instead of --reference, compute each response's reference log-prob "
        "with this model (its tokenizer must be --model's) before step 1, in every process.", metavar="MODEL",
        path="local",
    )
    rank_weight: float = setting(1.0, ge=0, description="Weight of the ranking loss; 0 is plain SFT on the best.")
    sft_weight: float | None = setting(  # set to the loss's default after validation when unset
        None, ge=0, description="Weight of the SFT loss on the best response; 0 is pure ranking (default: the "
        "loss's, see --loss; pro scales it by (k - 1)^2 per query as its authors do)."
    )
    sft_sources: list[str] = setting(
        description="Learn the SFT term only on queries whose best response comes from one of these sources (a "
        "stronger model's or people's answers ranked beside the policy's samples); --sft-weight then defaults to 1 "
        "where the loss's is 0. Default: every query's best.", default_factory=list, metavar="SOURCE[,SOURCE]",
    )
    anchor_weight: float = setting(
        0.0, ge=0, description="Weight of the NLL of every response of a query (their mean): on samples of the "
        "starting model, its forward KL up to a constant; on samples drawn below temperature 1 it also sharpens "
        "the model (any loss)."
    )
    length_penalty: float = setting(1.0, ge=0, description="alpha in p = logp / |y|^alpha.")
    rank_loss: Literal["hinge", "logistic"] = setting("hinge", description="hinge (the paper) or logistic.")
    margin: float = setting(0.0, description="Margin inside the ranking loss.")
    beta: float | None = setting(  # set to the loss's default after validation when unset
        None, gt=0, description="Scale: of rrhf's logistic ranking loss, of the implicit reward (dpo, listmle, lipo), "
        "of the mean log-prob gap (simpo); default: the loss's, see --loss (pro has none)."
    )
    gamma: float | None = setting(None, description="simpo: the target reward margin (default: the loss's).")
    sft_reduction: Literal["mean", "sum"] = setting("mean", description="SFT loss per token (mean) or summed.")
    # Batching and the optimiser.
    queries_per_batch: int = setting(1, ge=1, description="Queries per device batch; pairs stay within a query.")
    grad_accum: int = setting(1, ge=1, description="Gradient accumulation steps.")
    lr: float = setting(1e-5, gt=0, description="Peak learning rate.")
    epochs: float = setting(1.0, gt=0, description="Passes over the data.")
    max_steps: int | None = setting(None, ge=1, description="Stop after this many optimiser steps.")
    warmup_ratio: float = setting(0.0, ge=0, lt=1, description="Fraction of steps spent warming up.")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = setting(
        "linear", description="Learning-rate schedule."
    )
    weight_decay: float = setting(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = setting(1.0, ge=0, description="Clip the gradient's global norm to this (0: no clipping).")
    optimizer_in_backward: bool = setting(
        False, description="Step each weight as soon as its gradient is whole, and free that gradient, so a step "
        "never holds every gradient at once (about a copy of the trained weights off the peak). The same training "
        "as without it; it needs --max-grad-norm 0, --grad-accum 1, no --fp16 and one process."
    )
    max_length: int = setting(1024, ge=8, description="Longest prompt + response; prompts are cut on the left first.")
    # Operational settings change how a run computes or keeps its progress, not what it trains: a resume may
    # change them (the rest must match the run it continues).
    pack_prompt: Literal["auto", "on", "off"] = setting(
        "auto",
        description="Encode each query's prompt once for its k responses (shared-prompt attention).",
        operational=True,
    )
    loss_chunk_size: int | None = setting(
        None, ge=0, description="Learned positions projected onto the vocabulary at once (default: 64 MiB of "
        "logits per chunk; 0: all at once).", operational=True,
    )
    # Precision and memory.
    bf16: bool = setting(False, description="bfloat16 mixed precision (the loss stays fp32).")
    fp16: bool = setting(False, description="float16 mixed precision (the loss stays fp32).")
    # On by default, as in TRL: the layers' activations are the largest part of a step that need not be kept
    # (SmolLM2-135M, 4 pairs of ~280 tokens: 4.2 GiB peak without, 3.2 GiB with), for about 1.3x the time.
    gradient_checkpointing: bool = setting(
        True, description="Recompute activations in the backward pass (--no-gradient-checkpointing trains faster "
        "where memory allows).", operational=True
    )
    ddp_find_unused_parameters: bool | None = setting(
        None, description="DDP: look for parameters the loss did not use at every step (default: transformers', on "
        "with --no-gradient-checkpointing). Dense models can turn it off; mixture-of-experts models need it.",
        operational=True,
    )
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] | None = setting(
        None,
        description="Attention kernel; the model's default when unset. flash_attention_2 needs a CUDA GPU and the "
        "flash-attn package, and trains unpacked (packing runs on sdpa and eager).",
        operational=True,
    )
    # LoRA (needs the `lora` extra).
    lora_r: int = setting(0, ge=0, description="LoRA rank; 0 trains all weights.")
    lora_alpha: float = setting(16.0, gt=0, description="LoRA alpha.")
    lora_targets: list[str] = setting(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names LoRA adapts (repeatable).",
        metavar="NAME",
    )
    merge_lora: bool = setting(False, description="Also write the merged model (the adapter goes to OUTDIR/adapter).")
    # Checkpoints and logs.
    save_steps: int | None = setting(
        None, ge=1, description="Checkpoint every N steps (OUTDIR/checkpoint-N).", operational=True
    )
    save_total_limit: int | None = setting(
        None, ge=1, description="Keep at most this many checkpoints.", operational=True
    )
    resume: bool = setting(
        False,
        description="Continue from the newest complete checkpoint in OUTDIR, with the run's input and settings "
        "(only --max-steps, --epochs and logging, checkpoint and memory options may change).",
        operational=True,
    )
    logging_steps: int = setting(
        10, ge=1, description="Log every N steps (and always the first).", operational=True
    )
    report_to: list[str] = setting(
        default_factory=list,
        description="Also log to: tensorboard, wandb, ...",
        metavar="NAME", operational=True,
    )
    seed: int = setting(0, description="Seed of initialisation, shuffling and dropout.")

    @model_validator(mode="after")
    def _one_precision(self) -> TrainConfig:
        if self.bf16 and self.fp16:
            raise ValueError("--bf16 and --fp16 exclude each other")
        return self

    @model_validator(mode="after")
    def _steps_in_backward(self) -> TrainConfig:
        # Each of these reads the whole gradient after the backward pass, when none is left.
        if self.optimizer_in_backward:
            if self.max_grad_norm:
                raise ValueError("--optimizer-in-backward steps each weight before the whole gradient exists, so it "
                                 "cannot clip its norm: add --max-grad-norm 0")
            if self.grad_accum > 1:
                raise ValueError("--optimizer-in-backward steps at every backward pass: it cannot accumulate "
                                 "gradients (--grad-accum 1)")
            if self.fp16:
                raise ValueError("--optimizer-in-backward cannot unscale float16 gradients: use --bf16")
        return self

    _split_sources = field_validator("sft_sources", mode="before")(comma_names)

    @field_validator("sft_sources")
    @classmethod
    def _source_set(cls, value: list[str]) -> list[str]:
        # A set of names: `b,a` and `a,b,a` are the run `a,b` is, for the resume check and the prepared-data cache.
        return sorted(set(value))

    @model_validator(mode="after")
    def _loss_defaults(self) -> TrainConfig:
        # Filled in here, so a config always holds the values it trains with (and the meta records them).
        defaults = DEFAULTS[self.loss]
        if self.beta is not None and defaults.beta is None:
            raise ValueError(f"--beta: --loss {self.loss} has no beta")
        if self.gamma is not None and defaults.gamma is None:
            raise ValueError(f"--gamma is for --loss simpo, not --loss {self.loss}")
        if defaults.reference and not (self.reference or self.reference_model):
            raise ValueError(f"--loss {self.loss} needs --reference NAME, the scores.NAME that "
                             f"`{REFERENCE_COMMAND.format(name='NAME')}` adds, or --reference-model MODEL")
        if self.reference and self.reference_model:
            raise ValueError("--reference and --reference-model exclude each other")
        # Set away from its default: a config written out whole (a meta's) still loads under another loss.
        fields = type(self).model_fields
        rrhf_only = sorted(name for name in RRHF_ONLY & self.model_fields_set
                           if getattr(self, name) != fields[name].default)
        if rrhf_only and self.loss != "rrhf":
            raise ValueError(f"--{rrhf_only[0].replace('_', '-')} is the rrhf loss's; --loss {self.loss} has none")
        given = "--reference" if self.reference else "--reference-model" if self.reference_model else None
        if given and not defaults.reference:
            raise ValueError(f"{given}: --loss {self.loss} uses no reference (dpo, listmle and lipo do)")
        if self.beta is None:
            self.beta = defaults.beta
        if self.gamma is None:
            self.gamma = defaults.gamma
        if self.sft_sources and self.sft_weight == 0:
            raise ValueError("--sft-sources limits the SFT term, which --sft-weight 0 turns off")
        if self.sft_weight is None:
            # Naming the sources asks for the term: a loss without one by default learns them at the paper's weight.
            self.sft_weight = defaults.sft_weight or (1.0 if self.sft_sources else 0.0)
        return self

    def data_needs(self) -> DataNeeds:
        """What the loss needs of each record beyond a ranking: a reference score, scores proper, sources."""
        from stages.train.data import DataNeeds

        return DataNeeds(reference=self.reference, scores=DEFAULTS[self.loss].scores, loss=self.loss,
                         sft_sources=tuple(self.sft_sources))

    def loss_settings(self) -> LossSettings:
        """The loss's part of the settings."""
        from stages.train.losses.common import LossSettings

        return LossSettings(
            rank_weight=self.rank_weight,
            sft_weight=self.sft_weight if self.sft_weight is not None else 1.0,
            anchor_weight=self.anchor_weight,
            length_penalty=self.length_penalty,
            rank_loss=self.rank_loss,
            margin=self.margin,
            beta=self.beta if self.beta is not None else 1.0,
            gamma=self.gamma or 0.0,
            sft_reduction=self.sft_reduction,
        )
