"""Every loss gives the same value and gradients from packed and unpacked batches of a real tiny model."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from stages.lm import shared_prompt
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import collate
from stages.lm.queries import Query
from stages.train.losses.common import LossSettings
from stages.train.losses.compute import LOSSES, batch_loss


def _queries():
    g = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(10, 300, (n,), generator=g).tolist()

    # k differs per query; a reference a little off the policy so the implicit rewards are not all zero; the SFT
    # term learns the second query's best alone (--sft-sources), so that path is held to the same equality.
    return [
        Query(prompt=ids(9), responses=[ids(3), ids(5), ids(2)], rewards=[0.2, 1.0, 0.0], refs=[-20.0, -35.0, -12.0],
              sft_targets=[True, False, True]),
        Query(prompt=ids(4), responses=[ids(6), ids(2)], rewards=[1.0, 0.5], refs=[-40.0, -11.0],
              sft_targets=[True, False]),
    ]


@pytest.fixture(scope="module")
def model(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().train()
    assert shared_prompt.install(model) is None
    return model


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_packed_and_unpacked_give_the_same_loss_and_gradients(model, name):
    settings = LossSettings(beta=0.5, gamma=0.5, sft_weight=0.3, anchor_weight=0.2)
    results = {}
    for packed in (False, True):
        model.zero_grad()
        batch = collate(_queries(), 0, packed=packed)
        assert batch["ref_logps"].tolist() == [-20.0, -35.0, -12.0, -40.0, -11.0]
        assert batch["sft_targets"].tolist() == [True, False, True, True, False]
        parts = batch_loss(name, batch, response_logprobs(model, batch, None), settings)
        parts.loss.backward()
        results[packed] = parts, {n: p.grad.clone() for n, p in model.named_parameters()}
    (plain, plain_grads), (packed, packed_grads) = results[False], results[True]
    assert plain.loss.item() > 0
    for field in ("loss", "rank_loss", "sft_loss", "p_best", "p_worst"):
        torch.testing.assert_close(getattr(packed, field), getattr(plain, field), atol=1e-5, rtol=1e-5, msg=field)
    assert (packed.rank_correct, packed.rank_pairs) == (plain.rank_correct, plain.rank_pairs)
    for n, grad in plain_grads.items():
        torch.testing.assert_close(packed_grads[n], grad, atol=1e-5, rtol=1e-4, msg=n)
