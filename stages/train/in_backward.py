"""Optimiser steps taken inside the backward pass (`--optimizer-in-backward`): each weight steps as soon as its
gradient is whole and the gradient is freed there, so a step never holds the gradients of all weights at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class StepsInBackward(torch.optim.Optimizer):
    """The optimiser Trainer sees: one placeholder group whose learning rate Trainer's scheduler drives (and
    checkpoints), while one optimiser per parameter, made by `make` from that parameter's group, steps it from
    a gradient hook at the group's current rate. `step` and `zero_grad` are no-ops: by the time Trainer calls
    them every weight has stepped and every gradient is gone. The state dict holds each parameter's optimiser
    state too, so a checkpoint resumes exactly. Equal to `make(groups)` stepped after the backward pass, as
    long as nothing reads the whole gradient between the two (clipping, accumulation, loss scaling)."""

    def __init__(self, groups: Iterable[dict[str, Any]], make: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
                 lr: float) -> None:
        super().__init__([torch.zeros(())], {"lr": lr})
        self.steppers: list[torch.optim.Optimizer] = []
        for group in groups:
            for param in group["params"]:
                stepper = make([{**group, "params": [param]}])
                self.steppers.append(stepper)
                param.register_post_accumulate_grad_hook(self._hook(stepper))

    def _hook(self, stepper: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
        def step(param: torch.Tensor) -> None:
            for group in stepper.param_groups:
                group["lr"] = self.param_groups[0]["lr"]
            stepper.step()
            stepper.zero_grad(set_to_none=True)

        return step

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """Nothing left to do: the hooks stepped every weight during the backward pass."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: each gradient was freed once its weight stepped."""

    def state_dict(self) -> dict[str, Any]:
        """The schedule's group and every parameter's optimiser state, in parameter order."""
        return {"schedule": super().state_dict(), "steppers": [s.state_dict() for s in self.steppers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned, for the same parameters in the same order."""
        super().load_state_dict(state_dict["schedule"])
        for stepper, state in zip(self.steppers, state_dict["steppers"], strict=True):
            stepper.load_state_dict(state)
