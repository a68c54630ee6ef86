"""The train stage, top to bottom: data, model, engine, train, save, meta."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stages.contract.errors import RrhfError, RunInterrupted, UsageError, first_line, interrupted
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.meta import Meta, meta_path, now, stage_meta, write_meta
from stages.contract.metrics import METRICS_FILE, read_metrics
from stages.lm.head import lean_head_or_none
from stages.lm.loading import load_pretrained
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import packing_verdict
from stages.runtime.console import log, progress
from stages.runtime.launch import current_launch
from stages.runtime.outputs import check_output, lock_output, unlock_output
from stages.train.cache import prepared_data
from stages.train.checkpoints import (
    STAGING,
    checkpoint_folders,
    checkpoint_step,
    drop_unfinished,
    is_write_failure,
    latest_complete,
    write_failure,
)
from stages.train.config import TrainConfig
from stages.train.resume import RUN_FILE, check_continues, run_record, trim_metrics, write_run_record

PACK_SAMPLE = 1000  # queries `--pack-prompt auto` estimates the saving on


def run_train(
    source: str, outdir: Path, config: TrainConfig, inputs: InputOptions = InputOptions(), force: bool = False
) -> Meta:
    """Fine-tune `config.model` on the scored candidates in `source`; the model folder lands in `outdir`."""
    started = now()
    data_source = InputFile(source, inputs)
    _check_outdir(outdir, config.resume, force, config.model)
    launch = current_launch()
    if launch.rank == 0:  # one writer per OUTDIR: the launch's ranks write it together
        lock_output(outdir)
    record = run_record(config, data_source, launch.world_size)
    if config.resume:
        check_continues(outdir, record)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Validates the whole input (a bad record ends the run here, before OUTDIR changes), or reuses what an
    # earlier run prepared from the same input.
    data = prepared_data(data_source, tokenizer, config.max_length, launch)
    if force and not config.resume:
        _start_over(outdir)

    model_kwargs: dict[str, Any] = {"dtype": torch.float32}
    if config.attn_implementation:
        model_kwargs["attn_implementation"] = config.attn_implementation
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, config.model, **model_kwargs)
    # The estimate reads a sample of the queries; the log line counts the tokens of all of them.
    packed = packing_verdict(
        data.sample(PACK_SAMPLE), config.pack_prompt, "train", lambda batch: response_logprobs(model, batch, None),
        model, tokens=(data.info["tokens_unpacked"], data.info["tokens_packed"]),
    )
    head = lean_head_or_none(model, "train", config.loss_chunk_size)
    if config.lora_r:
        model = _with_lora(model, config)

    from stages.train.trainer import Collator, MetricsFile, QueryDataset, RRHFTrainer, StepProgress

    args = _training_arguments(
        TrainingArguments,
        output_dir=str(outdir),
        per_device_train_batch_size=config.queries_per_batch,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_ratio=config.warmup_ratio,
        lr_scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        bf16=config.bf16,
        fp16=config.fp16,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
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
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without it, torchrun on a CPU-only machine runs N unconnected copies instead of gloo DDP.
        use_cpu=not torch.cuda.is_available(),
    )
    metrics = outdir / METRICS_FILE
    checkpoint = _prepare_outdir(outdir, config.resume, record, lead=args.should_save)
    trainer = RRHFTrainer(
        model=model,
        args=args,
        train_dataset=QueryDataset(data),
        data_collator=Collator(tokenizer.pad_token_id, packed),
        processing_class=tokenizer,
        loss_settings=config.loss_settings(),
        head=head,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints dicts to stdout; ours log to stderr
    trainer.add_callback(MetricsFile(metrics))
    info = data.info
    total = config.max_steps or _steps(info["queries"], config)
    log.info(
        "train: %d queries, %d responses, %d ranking pairs, %s prompts, %d steps",
        info["queries"], info["responses"], info["pairs"], "packed" if packed else "unpacked", total,
    )
    clock = time.perf_counter()
    with progress(total, "train") as advance:
        trainer.add_callback(StepProgress(advance, log.info))
        try:
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except KeyboardInterrupt as err:
            raise _interrupted(outdir, err) from None
    seconds = time.perf_counter() - clock
    cuda_peak = (f"; peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                 if torch.cuda.is_available() else "")
    try:
        _save(trainer, model, outdir, config)
    except Exception as err:
        if not is_write_failure(err):
            raise
        raise write_failure(outdir, "model", err) from err
    counts = {
        "queries": info["queries"],
        "responses": info["responses"],
        "steps": result.global_step,
        "packed": int(packed),
        **{name: info[name] for name in ("pairs", "prompts_truncated", "responses_truncated")},
    }
    meta = stage_meta("train", config, [data_source], counts, started)
    if trainer.args.should_save:
        write_meta(outdir, meta)
    logged = read_metrics(metrics)
    last = logged[-1] if logged else {}
    log.info(
        "train: %d steps in %.1f s%s; final loss %s, rank accuracy %s; model in %s",
        result.global_step, seconds, cuda_peak,
        _fmt(last.get("loss")), _fmt(last.get("rank_acc")), outdir,
    )
    unlock_output(outdir)
    return meta


def _training_arguments(cls: Any, warmup_ratio: float, gradient_checkpointing: bool,
                        gradient_checkpointing_kwargs: dict | None, **kwargs: Any) -> Any:
    # transformers 5 renamed gradient checkpointing and folded the warmup ratio into warmup_steps.
    fields = cls.__dataclass_fields__
    if "activation_checkpointing" in fields:
        kwargs |= {"activation_checkpointing": gradient_checkpointing,
                   "activation_checkpointing_kwargs": gradient_checkpointing_kwargs}
    else:
        kwargs |= {"gradient_checkpointing": gradient_checkpointing,
                   "gradient_checkpointing_kwargs": gradient_checkpointing_kwargs}
    kwargs["warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"] = warmup_ratio
    return cls(**kwargs)


def _steps(n_queries: int, config: TrainConfig) -> int:
    import math

    world = current_launch().world_size
    per_epoch = math.ceil(math.ceil(n_queries / (config.queries_per_batch * world)) / config.grad_accum)
    return max(1, math.ceil(per_epoch * config.epochs))


def _check_outdir(outdir: Path, resume: bool, force: bool, model: str) -> None:
    check_output(outdir, [model], folder=True)  # never over the model being trained
    checkpoints = checkpoint_folders(outdir)
    if resume and not checkpoints:
        raise UsageError(f"{outdir}: --resume given but there is no checkpoint-* folder to resume from")
    if resume and latest_complete(outdir) is None:
        raise UsageError(
            f"{outdir}: --resume given but no checkpoint-* folder is complete (their saves were cut short); "
            "--force instead of --resume starts over"
        )
    if checkpoints and not resume and not force:
        raise UsageError(
            f"{outdir} holds checkpoints of an earlier run; add --resume to continue it or --force to start over"
        )


def _start_over(outdir: Path) -> None:
    """--force: the checkpoints of the earlier run go (once the input has proved good)."""
    import shutil

    for checkpoint in checkpoint_folders(outdir):
        shutil.rmtree(checkpoint)
    shutil.rmtree(outdir / STAGING, ignore_errors=True)


def _prepare_outdir(outdir: Path, resume: bool, record: dict[str, Any], lead: bool) -> Path | None:
    """Ready OUTDIR for training and return the checkpoint to resume from: what an interrupted save left is
    removed, meta.json goes until the run ends, and a fresh run records itself in run.json, a resumed one cuts
    metrics.jsonl back to its checkpoint. Only the process that saves (`lead`) changes files."""
    checkpoint = latest_complete(outdir) if resume else None
    outdir.mkdir(parents=True, exist_ok=True)
    if not lead:
        return checkpoint
    drop_unfinished(outdir)
    meta_path(outdir).unlink(missing_ok=True)  # a meta.json beside a model being rewritten would vouch for it
    metrics = outdir / METRICS_FILE
    if checkpoint is None:
        metrics.unlink(missing_ok=True)
    else:
        trim_metrics(metrics, checkpoint_step(checkpoint))
        log.info("train: resuming from %s", checkpoint)
    if checkpoint is None or not (outdir / RUN_FILE).is_file():
        write_run_record(outdir, record)
    return checkpoint


def _interrupted(outdir: Path, err: KeyboardInterrupt) -> RunInterrupted:
    """Ctrl-C or SIGTERM during training, in one line saying what is kept."""
    latest = latest_complete(outdir)
    kept = (f"the last complete checkpoint is {latest}: add --resume to continue from it" if latest
            else "no checkpoint is complete yet, so the same command starts over")
    return interrupted(err, kept)


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
