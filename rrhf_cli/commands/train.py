"""`rrhf train`: parse options and call the train stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrhf_cli.options import CheckpointForceOpt, InputArg, command
from stages.contract.formats import InputOptions
from stages.train.config import TrainConfig

OutDirOpt = Annotated[
    Path,
    typer.Option("-o", "--output", help="Model folder to write (from_pretrained layout, metrics.jsonl, meta.json)."),
]


@command(TrainConfig)
def train_command(
    source: InputArg,
    output: OutDirOpt,
    config: TrainConfig,
    inputs: InputOptions,
    force: CheckpointForceOpt = False,
) -> None:
    """Fine-tune a causal LM with the RRHF loss (a ranking loss on length-normalised log-probs plus SFT on the
    best) or another of --loss: pro, listmle, lipo, dpo, simpo.

    INPUT is a scored file, a listwise ranked file, TRL preference pairs or an RRHF-reference file. Runs on
    CUDA when present; `torchrun` or `accelerate launch` run the same command with DDP, FSDP or DeepSpeed.

    Examples:

    \b
        rrhf train scored.jsonl -o out/ --model Qwen/Qwen2.5-0.5B-Instruct --bf16 --lr 1e-5
        rrhf train pairs.jsonl -o out/ --model my-sft/ --rank-loss logistic --beta 0.5 --lora-r 16
        rrhf train with-ref.jsonl -o out/ --model my-sft/ --loss dpo --reference ref
        torchrun --nproc_per_node 8 -m rrhf_cli train scored.jsonl -o out/ --config train.yaml
    """
    from stages.train.run import run_train

    run_train(source, output, config, inputs, force)
