"""The engine: transformers' Trainer with the chosen loss (RRHF's by default), so torchrun/accelerate give DDP,
FSDP or DeepSpeed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from stages.contract.errors import RrhfError
from stages.lm.head import LabelLogProbHead
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import collate
from stages.lm.queries import Query
from stages.train.checkpoints import STAGING, discard, is_write_failure, publish, write_failure
from stages.train.losses.common import LossSettings
from stages.train.losses.compute import batch_loss


class Collator:
    """Pads a batch of queries to its longest row, packed or not."""

    def __init__(self, pad_id: int, packed: bool) -> None:
        self.pad_id, self.packed = pad_id, packed

    def __call__(self, queries: list[Query]) -> dict[str, torch.Tensor]:
        return collate(queries, self.pad_id, self.packed)


class RRHFTrainer(Trainer):
    """Trainer whose loss is `loss_name`'s (`compute_loss`); logs (`log`) rank/SFT loss, rank accuracy, mean p of
    best/worst and tokens/s, each over all ranks; a checkpoint appears as OUTDIR/checkpoint-N only once it is
    completely written (`StagedCheckpoints`)."""

    def __init__(
        self, *args: Any, loss_name: str, loss_settings: LossSettings, head: LabelLogProbHead | None,
        optimizer_in_backward: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.loss_name, self.loss_settings = loss_name, loss_settings
        self.head = head
        if optimizer_in_backward:  # Trainer keeps an optimiser it is given, and builds its scheduler on it
            self.optimizer = self._steps_in_backward()
        self._sums: dict[str, torch.Tensor | int] = {}
        self._since = time.perf_counter()
        self._checkpoints = StagedCheckpoints(Path(self.args.output_dir), self.accelerator.wait_for_everyone)
        self.add_callback(self._checkpoints)

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        logp = response_logprobs(model, inputs, self.head)
        parts = batch_loss(self.loss_name, inputs, logp, self.loss_settings)
        # Summed as device tensors: read (one host sync) only when a step is logged.
        for name, value in (
            ("rank_loss", parts.rank_loss),
            ("sft_loss", parts.sft_loss),
            ("p_best", parts.p_best),
            ("p_worst", parts.p_worst),
            ("batches", 1),
            ("rank_correct", parts.rank_correct),
            ("rank_pairs", parts.rank_pairs),
            ("tokens", inputs["input_ids"].numel()),
        ):
            self._sums[name] = self._sums.get(name, 0) + value
        return (parts.loss, {"logp": logp}) if return_outputs else parts.loss

    def _steps_in_backward(self) -> torch.optim.Optimizer:
        """Trainer's optimiser and weight-decay groups, stepped one parameter at a time from the backward pass."""
        from stages.train.in_backward import StepsInBackward

        trained = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        decay = set(self.get_decay_parameter_names(self.model))
        groups = [{"params": [p for name, p in trained if name in decay], "weight_decay": self.args.weight_decay},
                  {"params": [p for name, p in trained if name not in decay], "weight_decay": 0.0}]
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        return StepsInBackward(groups, lambda group: cls(group, **kwargs), self.args.learning_rate)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Step logs happen on every rank together (Trainer gathers the loss for them), so the sums can be
        # added across ranks here: the figures then cover the whole batch, not rank 0's share of it.
        if "loss" in logs and self._sums.get("batches"):
            sums = self._summed_over_ranks()
            n = sums["batches"]
            now = time.perf_counter()
            logs = {
                **logs,
                "rank_loss": sums["rank_loss"] / n,
                "sft_loss": sums["sft_loss"] / n,
                "rank_acc": sums["rank_correct"] / sums["rank_pairs"] if sums["rank_pairs"] else float("nan"),
                "p_best": sums["p_best"] / n,
                "p_worst": sums["p_worst"] / n,
                "tokens_per_second": sums["tokens"] / max(now - self._since, 1e-9),
            }
            self._sums, self._since = {}, now
        super().log(logs, start_time)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Trainer's training loop; a checkpoint save that could not write (a full disk) is one line naming it."""
        try:
            return super().train(*args, **kwargs)
        except Exception as err:
            failure = self._checkpoints.failure(err)
            if failure is None:
                raise
            raise failure from err

    def _summed_over_ranks(self) -> dict[str, float]:
        names = sorted(self._sums)
        local = torch.stack([torch.as_tensor(self._sums[k], device=self.args.device).double() for k in names])
        total = self.accelerator.reduce(local, reduction="sum") if self.args.world_size > 1 else local
        return dict(zip(names, total.tolist(), strict=True))


class StagedCheckpoints(TrainerCallback):
    """Checkpoints that appear as OUTDIR/checkpoint-N only once completely written: while Trainer saves one, its
    `output_dir` is OUTDIR/.partial, where every rank writes its part; once all are done, the saving process
    renames it into place and rotates the checkpoints (`save_total_limit`).

    Public hooks only: Trainer writes a checkpoint under `args.output_dir` as it is when saving, which happens
    between `on_step_end` (where DefaultFlowCallback, called first, sets `should_save`) and `on_save`.
    tests/train/test_resume.py::test_a_checkpoint_is_saved_under_the_staging_folder_then_renamed pins this, so a
    transformers release that changes it fails a test rather than a run."""

    def __init__(self, outdir: Path, wait_for_everyone: Callable[[], None]) -> None:
        self.outdir, self.wait_for_everyone = outdir, wait_for_everyone
        self.saving: Path | None = None  # the checkpoint being saved

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_save:
            self.saving = self.outdir / f"checkpoint-{state.global_step}"
            args.output_dir = str(self.outdir / STAGING)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        args.output_dir = str(self.outdir)
        final = self.outdir / f"checkpoint-{state.global_step}"
        self.wait_for_everyone()
        if args.should_save:
            publish(self.outdir / STAGING / final.name, final)
            # By step number: names are only ever put in place complete, so the highest is the newest.
            rotate_checkpoints(str(self.outdir), args.save_total_limit, state.best_model_checkpoint)
        self.saving = None

    def failure(self, err: BaseException) -> RrhfError | None:
        """The one-line error of a checkpoint save that failed to write (what it wrote is removed), or None where
        `err` is not that."""
        if self.saving is None or not is_write_failure(err):
            return None
        discard(self.outdir / STAGING / self.saving.name)
        return write_failure(self.saving, "checkpoint", err)


class MetricsFile(TrainerCallback):
    """Appends one JSON line per logged step to OUTDIR/metrics.jsonl (main process only); the last step is
    always logged, so the summary reports final figures."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps:
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN is not JSON
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        except OSError as err:
            raise RrhfError(f"{self.path}: could not write ({err.strerror or err})") from err


class StepProgress(TrainerCallback):
    """Drives the shared progress display, and logs each logged step on one line."""

    def __init__(self, advance: Callable[[int], None], log_line: Callable[[str], None]) -> None:
        self.advance, self.log_line = advance, log_line
        self.seen = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.advance(state.global_step - self.seen)
            self.seen = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs and "loss" in logs:
            shown = ("loss", "rank_loss", "sft_loss", "rank_acc", "learning_rate")
            self.log_line(
                f"step {state.global_step}: " + ", ".join(f"{k} {logs[k]:.4g}" for k in shown if k in logs)
            )
