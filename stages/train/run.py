"""The train stage, top to bottom: data, model, engine, train, save, meta."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stages.contract.errors import RrhfError, UsageError, first_line
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.meta import Meta
from stages.contract.metrics import read_metrics
from stages.lm.head import lean_head_or_none
from stages.lm.loading import load_pretrained
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import packing_verdict
from stages.runtime.console import log, progress
from stages.runtime.launch import current_launch, leave_together
from stages.runtime.memory import memory_kind, out_of_memory
from stages.train.cache import prepared_data
from stages.train.checkpoints import is_write_failure, write_failure
from stages.train.config import TrainConfig
from stages.train.run_folder import RunFolder
from stages.train.tokenise import Counts

PACK_SAMPLE = 1000  # queries `--pack-prompt auto` estimates the saving on
REFERENCE_BATCH = 8  # sequences per reference forward per training query: no gradients, so a few more fit


def run_train(
    source: str, outdir: Path, config: TrainConfig, inputs: InputOptions = InputOptions(), force: bool = False
) -> Meta:
    """Fine-tune `config.model` on the scored candidates in `source`; the model folder lands in `outdir`."""
    data_source = InputFile(source, inputs)
    launch = current_launch()
    if config.optimizer_in_backward and launch.parallel:
        raise UsageError("--optimizer-in-backward trains in one process: each weight would step on its own "
                         "process's gradient before the processes average them")
    # Checks OUTDIR against --resume and --force, locks it and fingerprints the run, before any work.
    with RunFolder(outdir, config, data_source, launch, force) as run:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, config.model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Validates the whole input (a bad record ends the run here, before OUTDIR changes), or reuses what an
        # earlier run prepared from the same input.
        # Of the very bytes the run was fingerprinted by: an input rewritten since is refused, never prepared.
        data, prepared_from = prepared_data(data_source, tokenizer, config.max_length, launch, config.data_needs(),
                                            sha256=run.sha256)
        counts = data.info.counts
        if counts.responses_unended:
            log.info("train: %d of %d responses were cut by the sampler's token limit (finish_reason \"length\"); "
                     "they are learned without an end token", counts.responses_unended, counts.responses)
        if config.sft_sources:
            _check_sft_sources(config.sft_sources, counts, source)
        if config.reference:  # --reference-model reads the very tokens trained
            _check_reference_cut(config.reference, config.max_length, Path(source),
                                 counts.prompts_truncated + counts.responses_truncated)

        train_data: Any = data
        if config.reference_model:  # before the policy loads, so the two never share the memory
            from stages.train.reference import WithReferences, reference_logprobs

            refs = reference_logprobs(config.reference_model, data, tokenizer, config.pack_prompt,
                                      REFERENCE_BATCH * config.queries_per_batch)
            train_data = WithReferences(data, refs)

        model_kwargs: dict[str, Any] = {"dtype": torch.float32}
        if config.attn_implementation:
            model_kwargs["attn_implementation"] = config.attn_implementation
        model = load_pretrained(AutoModelForCausalLM.from_pretrained, config.model, **model_kwargs)
        # The estimate reads a sample of the queries; the log line counts the tokens of all of them.
        packed = packing_verdict(
            data.sample(PACK_SAMPLE), config.pack_prompt, "train", lambda batch: response_logprobs(model, batch, None),
            model, tokens=(counts.tokens_unpacked, counts.tokens_packed),
        )
        head = lean_head_or_none(model, "train", config.loss_chunk_size)
        if config.lora_r:
            model = _with_lora(model, config)

        from stages.train.trainer import Collator, MetricsFile, RRHFTrainer, StepProgress

        args = _training_arguments(TrainingArguments, config, outdir, torch.cuda.is_available())
        checkpoint = run.start(lead=args.should_save)
        trainer = RRHFTrainer(
            model=model,
            args=args,
            train_dataset=train_data,
            data_collator=Collator(tokenizer.pad_token_id, packed),
            processing_class=tokenizer,
            loss_name=config.loss,
            loss_settings=config.loss_settings(),
            head=head,
            optimizer_in_backward=config.optimizer_in_backward,
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints dicts to stdout; ours log to stderr
        trainer.add_callback(MetricsFile(run.metrics))
        total = config.max_steps or _steps(counts.queries, config)
        log.info(
            "train: %d queries, %d responses, %d ranking pairs, %s prompts, %d steps",
            counts.queries, counts.responses, counts.pairs, "packed" if packed else "unpacked", total,
        )
        clock = time.perf_counter()
        with progress(total, "train") as advance:
            trainer.add_callback(StepProgress(advance, log.info))
            try:
                result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            except KeyboardInterrupt as err:
                raise run.interrupted(err) from None
            except Exception as err:
                if (kind := memory_kind(err)) is None:
                    raise
                raise out_of_memory("train", kind, run.kept()) from None
        seconds = time.perf_counter() - clock
        cuda_peak = (f"; peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                     if torch.cuda.is_available() else "")
        try:
            _save(trainer, model, outdir, config)
        except Exception as err:
            if not is_write_failure(err):
                raise
            raise write_failure(outdir, "model", err) from err
        meta = run.finish({
            "queries": counts.queries,
            "responses": counts.responses,
            "steps": result.global_step,
            "packed": int(packed),
            "pairs": counts.pairs,
            "prompts_truncated": counts.prompts_truncated,
            "responses_truncated": counts.responses_truncated,
            "responses_unended": counts.responses_unended,
        } | ({"responses_sft": counts.responses_sft, "queries_sft": counts.queries_sft} if config.sft_sources else {}),
            prepared_from)
        logged = read_metrics(run.metrics)
        last = logged[-1] if logged else {}
        log.info(
            "train: %d steps in %.1f s%s; final loss %s, rank accuracy %s; model in %s",
            result.global_step, seconds, cuda_peak,
            _fmt(last.get("loss")), _fmt(last.get("rank_acc")), outdir,
        )
    leave_together(launch)
    return meta


def _check_sft_sources(sources: list[str], counts: Counts, source: str) -> None:
    """Refuse `--sft-sources` that no response comes from (a misspelt source, say); say how many queries' best
    answers the SFT term learns, and warn where none (a round whose better source never won still trains)."""
    named, those = ", ".join(sources), "that source" if len(sources) == 1 else "those sources"
    if not counts.responses_sft:
        raise UsageError(f"--sft-sources {named}: no response of {source} comes from {those} (a response's source is "
                         "its `source` field)")
    if not counts.queries_sft:
        log.warning("train: --sft-sources %s: no query's best response comes from %s, so the SFT term learns "
                    "nothing this run", named, those)
        return
    log.info("train: the SFT term learns the best response of %d of %d queries (from %s)", counts.queries_sft,
             counts.queries, named)


def _check_reference_cut(name: str, max_length: int, source: Path, cut: int) -> None:
    """Refuse, or warn of, a reference scored on other tokens than training reads (`reference.cut_mismatch`)."""
    from stages.train.reference import cut_mismatch, scored_max_length

    found = cut_mismatch(name, scored_max_length(source, name), max_length, cut)
    if found is not None:
        refuse, message = found
        if refuse:
            raise UsageError(f"--reference {name}: {message}")
        log.warning("train: %s", message)


def _training_arguments(cls: Any, config: TrainConfig, outdir: Path, cuda: bool) -> Any:
    """transformers' TrainingArguments for `config`, writing checkpoints into `outdir`."""
    kwargs: dict[str, Any] = dict(
        output_dir=str(outdir),
        per_device_train_batch_size=config.queries_per_batch,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        lr_scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        bf16=config.bf16,
        fp16=config.fp16,
        ddp_find_unused_parameters=config.ddp_find_unused_parameters,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit,
        report_to=config.report_to or "none",
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_pin_memory=cuda,
        # Without it, torchrun on a CPU-only machine runs N unconnected copies instead of gloo DDP.
        use_cpu=not cuda,
    )
    # transformers 5 renamed gradient checkpointing and folded the warmup ratio into warmup_steps.
    fields = cls.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    kwargs[checkpointing] = config.gradient_checkpointing
    kwargs[f"{checkpointing}_kwargs"] = {"use_reentrant": False} if config.gradient_checkpointing else None
    kwargs["warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"] = config.warmup_ratio
    return cls(**kwargs)


def _steps(n_queries: int, config: TrainConfig) -> int:
    import math

    world = current_launch().world_size
    per_epoch = math.ceil(math.ceil(n_queries / (config.queries_per_batch * world)) / config.grad_accum)
    return max(1, math.ceil(per_epoch * config.epochs))


def _with_lora(model: Any, config: TrainConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RrhfError("LoRA needs peft: pip install 'rrhf[lora]'") from None
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=config.lora_targets,
                      task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as err:
        raise UsageError(f"--lora-targets: {first_line(err)}") from None


def _save(trainer: Any, model: Any, outdir: Path, config: TrainConfig) -> None:
    """A from_pretrained folder: the full model, or the LoRA adapter (plus the merged model with --merge-lora)."""
    if not config.lora_r or not config.merge_lora:
        trainer.save_model(str(outdir))
        return
    trainer.save_model(str(outdir / "adapter"))
    if trainer.args.should_save:
        merged = trainer.accelerator.unwrap_model(model).merge_and_unload()
        merged.save_pretrained(str(outdir))
        trainer.processing_class.save_pretrained(str(outdir))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a"
