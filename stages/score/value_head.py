"""Value-head reward models: a causal LM checkpoint plus a linear head read at each response's last token.

TRL's `AutoModelForCausalLMWithValueHead` saves `v_head.summary.weight` and `.bias` beside the LM's weights.
OpenRLHF's reward models save `value_head.weight` (its `--value_head_prefix`; with the prefix `score` the
checkpoint is an ordinary sequence classifier) and, trained with `--normalize_reward`, `mean` and `std` in
config.json, which its reward model applies at inference: (value - mean) / std.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stages.contract.errors import UsageError
from stages.runtime.hub import cache_only

HEAD_PREFIXES = ("v_head.summary", "value_head")  # TRL, OpenRLHF


def value_head_prefix(names: Iterable[str]) -> str | None:
    """The value head's key prefix among a checkpoint's tensor names, or None when it has none."""
    present = set(names)
    return next((prefix for prefix in HEAD_PREFIXES if f"{prefix}.weight" in present), None)


def folded(weight: list[float], bias: float, mean: float = 0.0, std: float = 1.0) -> tuple[list[float], float]:
    """The head with the normalisation (value - mean) / std folded into its weight and bias."""
    return [w / std for w in weight], (bias - mean) / std


def model_folder(name: str) -> Path:
    """The local folder of a model: the path itself, or the hub cache's snapshot of its weights and config."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    local = cache_only(name)  # the hub is silent: its retries would take a minute to say so
    try:  # the files from_pretrained fetches too: safetensors, or .bin where a repository has none
        folder = Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors"], local_files_only=local))
        if not checkpoint_files(folder):
            folder = Path(snapshot_download(name, allow_patterns=["*.json", "*.bin"], local_files_only=local))
        return folder
    except Exception as err:  # not found, offline, auth: one line naming the model
        raise UsageError(f"cannot load model '{name}': {str(err).splitlines()[0]}") from None


def checkpoint_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint: safetensors where there are any, else PyTorch .bin files."""
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def tensor_names(path: Path) -> list[str]:
    """The tensor names a weight file holds."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    return list(_torch_load(path))


def head_prefix_of(folder: Path) -> str | None:
    """The value head's key prefix in a checkpoint folder, or None when it is no value-head checkpoint."""
    return value_head_prefix(name for path in checkpoint_files(folder) for name in tensor_names(path))


def load_value_head(folder: Path, prefix: str) -> Any:
    """The head as a torch Linear (hidden -> 1), with any OpenRLHF normalisation folded in."""
    import torch

    found: dict[str, Any] = {}
    for path in checkpoint_files(folder):
        tensors = _tensors(path, [f"{prefix}.weight", f"{prefix}.bias"])
        found.update(tensors)
    weight = found[f"{prefix}.weight"].float().reshape(-1)
    bias = float(found[f"{prefix}.bias"].float().reshape(-1)[0]) if f"{prefix}.bias" in found else 0.0
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    mean, std = (float(config["mean"]), float(config["std"])) if config.get("normalize_reward") else (0.0, 1.0)
    new_weight, new_bias = folded(weight.tolist(), bias, mean, std)
    head = torch.nn.Linear(weight.numel(), 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(new_weight)[None, :])
        head.bias.fill_(new_bias)
    return head


def _tensors(path: Path, names: list[str]) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in names if name in handle.keys()}
    state = _torch_load(path)
    return {name: state[name] for name in names if name in state}


def _torch_load(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
