"""Loading models and tokenizers the same way in every stage: device, dtype, pad id, context length, errors."""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Callable
from contextlib import nullcontext, redirect_stderr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stages.contract.errors import UsageError, first_line
from stages.runtime.console import log, quiet_libraries
from stages.runtime.hub import cache_only
from stages.runtime.launch import current_launch

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]


def pick_device(requested: Device = "auto") -> torch.device:
    """CUDA (the local rank's GPU under a launcher) when asked for or (auto) present, else the CPU; asking for
    CUDA that torch cannot see is an error."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    # Under a launcher each process takes the GPU of its local rank.
    return torch.device("cuda", current_launch().local_rank) if cuda else torch.device("cpu")


def pick_dtype(device: torch.device, bf16: bool | None = None) -> torch.dtype:
    """bfloat16 on CUDA and float32 on the CPU, unless `bf16` says otherwise."""
    import torch

    use_bf16 = bf16 if bf16 is not None else device.type == "cuda"
    return torch.bfloat16 if use_bf16 else torch.float32


def pad_id(tokenizer: Any) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its EOS (padding is masked either way), else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def fitting_length(max_length: int, model_config: Any) -> int:
    """`max_length`, or the model's context length where that is shorter (absolute-position models such as
    BERT and GPT-2 cannot read past it)."""
    context = getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", None)
    return min(max_length, context) if isinstance(context, int) and context > 0 else max_length


def load_pretrained(load: Callable[..., Any], name: str, **kwargs: Any) -> Any:
    """`load(name, **kwargs)` (a `from_pretrained`), with a missing folder or an unloadable model reported in
    one line naming --model. A `.gguf` file (llama.cpp's format) loads too, dequantised: transformers reads
    it with the `gguf` package (`pip install 'rrhf[gguf]'`)."""
    quiet_libraries()  # rrhf shows its own progress; a weight-loading bar is noise on stderr
    path = Path(name).expanduser()
    gguf = path.suffix == ".gguf"
    if (gguf or name.startswith(("/", ".", "~"))) and not path.exists():
        raise UsageError(f"--model {name}: no such {'file' if gguf else 'folder'}")
    if not gguf and cache_only(name):  # the hub is silent: its retries would take a minute to say so
        kwargs["local_files_only"] = True
    try:
        if gguf:
            # transformers dequantises under a bare tqdm bar that its progress-bar switch does not reach
            with nullcontext() if log.isEnabledFor(logging.DEBUG) else redirect_stderr(io.StringIO()):
                loaded = load(str(path.parent), gguf_file=path.name, **kwargs)
        else:
            loaded = load(name, **kwargs)
    # ImportError: an attention kernel, or the gguf package, that is not installed
    except (OSError, ValueError, ImportError) as err:
        raise UsageError(f"cannot load model '{name}': {first_line(err)}") from None
    return plain_model(loaded) if gguf else loaded


def plain_model(loaded: Any) -> Any:
    """A model read from GGUF as an ordinary one (same class, config and weights), which `save_pretrained`
    writes as a `from_pretrained` folder; transformers refuses to save the GGUF-loaded object itself.
    Tokenizers and configs pass through."""
    if not hasattr(loaded, "state_dict") or not hasattr(loaded, "config"):
        return loaded
    config = copy.deepcopy(loaded.config)
    # The weights are dequantised: a config that still said "gguf" would make the saved folder a quantized
    # model, which transformers then refuses to train.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    return model.to(next(loaded.parameters()).dtype)


def load_causal_lm(name: str, device: torch.device, dtype: torch.dtype, **kwargs: Any) -> tuple[Any, Any]:
    """(tokenizer, model) of a causal LM, the model on `device` in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, name)
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, name, dtype=dtype, **kwargs)
    return tokenizer, model.to(device).eval()
