"""`rrhf train --optimizer-in-backward`: the same weights as stepping after the backward pass, a checkpoint that
resumes exactly, the gradients freed during the backward pass, and the settings it cannot honour refused."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from stages.train.in_backward import StepsInBackward
from tests.conftest import read_jsonl

PROMPTS = ["Say hello.", "Name a fruit.", "Count to three.", "Pick a colour."]
RESPONSES = ["hello there", "apple", "one two three"]


@pytest.fixture
def scored(write_jsonl):
    """Four queries of three scored responses."""
    responses = [{"text": text, "score": float(j)} for j, text in enumerate(RESPONSES)]
    return write_jsonl("scored.jsonl", [{"id": f"q{i}", "prompt": prompt, "responses": responses}
                                        for i, prompt in enumerate(PROMPTS)])


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def _train(cli: Callable[..., Any], model: Path, scored: Path, out: Path, *extra: str) -> Any:
    # Weight decay and a decaying rate, so the per-parameter groups and the schedule both matter.
    result = cli("train", scored, "-o", out, "--model", model, "--lr", "1e-3", "--weight-decay", "0.1",
                 "--scheduler", "linear", "--queries-per-batch", "2", "--max-grad-norm", "0", "--logging-steps", "1",
                 *extra)
    assert result.exit_code == 0, result.stderr
    return result


def test_stepping_in_the_backward_pass_trains_the_same_weights(tiny_models, scored, tmp_path, cli):
    _train(cli, tiny_models.policy, scored, tmp_path / "after", "--max-steps", "4")
    _train(cli, tiny_models.policy, scored, tmp_path / "during", "--max-steps", "4", "--optimizer-in-backward")
    after, during = _weights(tmp_path / "after"), _weights(tmp_path / "during")
    initial = _weights(tiny_models.policy)
    for name, tensor in after.items():
        assert not torch.equal(tensor, initial[name]), f"{name} did not train"
        torch.testing.assert_close(during[name], tensor, rtol=1e-5, atol=1e-7, msg=name)
    rates = [[row["learning_rate"] for row in read_jsonl(tmp_path / run / "metrics.jsonl")]
             for run in ("after", "during")]
    assert rates[0] == rates[1] and rates[0][0] > rates[0][-1]


def test_lora_steps_only_its_adapters_in_the_backward_pass(tiny_models, scored, tmp_path, cli):
    """Only the adapters require gradients, so only they get a hook; the merged weights equal stepping after."""
    pytest.importorskip("peft")
    lora = ("--max-steps", "3", "--lora-r", "4", "--merge-lora")
    _train(cli, tiny_models.policy, scored, tmp_path / "after", *lora)
    _train(cli, tiny_models.policy, scored, tmp_path / "during", *lora, "--optimizer-in-backward")
    after, during = _weights(tmp_path / "after"), _weights(tmp_path / "during")
    changed = [name for name, tensor in _weights(tiny_models.policy).items() if not torch.equal(tensor, after[name])]
    assert changed and all("proj" in name for name in changed)
    for name, tensor in after.items():
        torch.testing.assert_close(during[name], tensor, rtol=1e-5, atol=1e-7, msg=name)


def test_a_checkpoint_resumes_to_the_uninterrupted_weights(tiny_models, scored, tmp_path, cli):
    """A run that stopped after checkpoint-2 (the whole run's folder without checkpoint-4) resumes to the whole
    run's weights: each weight's AdamW moments and the schedule came back from the checkpoint."""
    flags = ("--max-steps", "4", "--save-steps", "2", "--optimizer-in-backward")
    _train(cli, tiny_models.policy, scored, tmp_path / "whole", *flags)
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    shutil.copy(tmp_path / "whole" / "run.json", tmp_path / "resumed")
    _train(cli, tiny_models.policy, scored, tmp_path / "resumed", *flags, "--resume")
    assert [row["step"] for row in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")] == [3, 4]
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    for name, tensor in whole.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-7, msg=name)


def test_each_gradient_is_freed_as_its_weight_steps():
    """loss = second * (3 * first), first = 2, second = 3: d/dsecond = 6 comes out of the backward pass before
    d/dfirst = 3 * 3 = 9, so by the time first's gradient exists, second has stepped (SGD, lr 0.5: 3 - 3 = 0)
    and its gradient is gone; after the pass no gradient is held and first is 2 - 4.5."""
    first, second = torch.nn.Parameter(torch.tensor(2.0)), torch.nn.Parameter(torch.tensor(3.0))
    seen = []
    first.register_hook(lambda grad: seen.append((grad.item(), second.grad, second.item())))
    StepsInBackward([{"params": [first, second]}], lambda group: torch.optim.SGD(group), lr=0.5)
    (second * (3 * first)).backward()
    assert seen == [(9.0, None, 0.0)]
    assert first.grad is None and second.grad is None
    assert first.item() == -2.5


@pytest.mark.parametrize(("extra", "says"), [
    ((), "add --max-grad-norm 0"),
    (("--max-grad-norm", "0", "--grad-accum", "2"), "--grad-accum 1"),
    (("--max-grad-norm", "0", "--fp16"), "use --bf16"),
])
def test_what_it_cannot_honour_is_refused_before_any_work(tiny_models, scored, tmp_path, cli, extra, says):
    out = tmp_path / "out"
    result = cli("train", scored, "-o", out, "--model", tiny_models.policy, "--optimizer-in-backward", *extra)
    assert result.exit_code == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_multi_process_launch_is_refused(tiny_models, scored, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    done = subprocess.run([sys.executable, "-m", "rrhf_cli", "train", str(scored), "-o", str(out), "--model",
                           str(tiny_models.policy), "--optimizer-in-backward", "--max-grad-norm", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "one process" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()
