"""`rrhf sample`: parse options and call the sample stage."""

from __future__ import annotations

from rrhf_cli.options import ForceOpt, InputArg, OutputOpt, command
from stages.contract.formats import InputOptions
from stages.sample.config import SampleConfig


@command(SampleConfig)
def sample_command(
    prompts: InputArg,
    output: OutputOpt,
    config: SampleConfig,
    inputs: InputOptions,
    force: ForceOpt = False,
) -> None:
    """Sample k responses per prompt from a model (transformers, vLLM, or an OpenAI-compatible API).

    Every response records its source (--source, default the model). Message prompts use the model's
    chat template. A killed run resumes from OUTPUT.partial when started again with the same command.

    Examples:

    \b
        rrhf sample prompts.jsonl -o samples.jsonl --model ./policy -k 4 --temperature 0.8 --top-p 0.95
        rrhf sample prompts.jsonl -o samples.jsonl --model ./policy -k 4 --strategy diverse-beam
        rrhf sample hh.jsonl -o samples.jsonl --model ./policy -k 2 --include-field chosen,rejected
        rrhf sample prompts.jsonl -o samples.jsonl --model gpt-4o -k 2 --engine openai --append
        rrhf sample prompts.jsonl -o samples.jsonl --engine openai --base-url http://127.0.0.1:8000/v1 --model m
        rrhf sample prompts.jsonl -o part0.jsonl --model ./policy --engine vllm --shard 0/4
    """
    from stages.sample.run import run_sample

    run_sample(prompts, output, config, inputs, force=force)
