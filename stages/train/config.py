"""Settings of `rrhf train`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, model_validator

from stages.runtime.config import setting

if TYPE_CHECKING:  # the loss module imports torch, which `rrhf --help` must not pay for
    from stages.train.loss import LossSettings


class TrainConfig(BaseModel):
    """Settings of `rrhf train`."""

    model: str = setting(description="Policy to fine-tune: a from_pretrained folder or hub name.", path="local")
    # The loss (arXiv 2304.05302, section 3).
    rank_weight: float = setting(1.0, ge=0, description="Weight of the ranking loss; 0 is plain SFT on the best.")
    sft_weight: float = setting(
        1.0, ge=0, description="Weight of the SFT loss on the best response; 0 is pure ranking."
    )
    length_penalty: float = setting(1.0, ge=0, description="alpha in p = logp / |y|^alpha.")
    rank_loss: Literal["hinge", "logistic"] = setting("hinge", description="hinge (the paper) or logistic.")
    margin: float = setting(0.0, description="Margin inside the ranking loss.")
    beta: float = setting(1.0, gt=0, description="Scale of the logistic ranking loss.")
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

    def loss_settings(self) -> LossSettings:
        """The loss's part of the settings."""
        from stages.train.loss import LossSettings

        return LossSettings(
            rank_weight=self.rank_weight,
            sft_weight=self.sft_weight,
            length_penalty=self.length_penalty,
            rank_loss=self.rank_loss,
            margin=self.margin,
            beta=self.beta,
            sft_reduction=self.sft_reduction,
        )
