"""The RRHF loss against hand computations on small tensors.

Shared example, one query with three responses (alpha = 1 unless a test says otherwise):
    logp_sum = [-3, -8, -3], lengths = [3, 2, 1]  ->  p = [-1, -4, -3]
    rewards  = [ 1,  2,  0]                       ->  best b = 1; (worse, better) pairs: (0,1), (2,0), (2,1)
"""

import math

import pytest
import torch

from stages.train.losses.common import LossBatch, LossSettings
from stages.train.losses.rrhf import rrhf_loss

LOGP = torch.tensor([-3.0, -8.0, -3.0])
LENGTHS = torch.tensor([3, 2, 1])
REWARDS = torch.tensor([1.0, 2.0, 0.0])
ONE_QUERY = torch.tensor([0, 0, 0])


def _loss(**settings):
    return rrhf_loss(LossBatch(LOGP, LENGTHS, REWARDS, ONE_QUERY), LossSettings(**settings))


def test_hinge_alpha_1():
    """hinge terms max(0, p_i - p_j): (0,1) -1+4 = 3; (2,0) -3+1 < 0 -> 0; (2,1) -3+4 = 1. L_rank = 4.
    SFT (mean) = 8 / 2 = 4. L = 4 + 4 = 8. Correctly ordered pairs: only (2,0)."""
    parts = _loss()
    assert parts.rank_loss.item() == pytest.approx(4.0)
    assert parts.sft_loss.item() == pytest.approx(4.0)
    assert parts.loss.item() == pytest.approx(8.0)
    assert (parts.rank_correct, parts.rank_pairs) == (1, 3)
    assert parts.p_best.item() == pytest.approx(-4.0) and parts.p_worst.item() == pytest.approx(-3.0)


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, 10.0),  # p = logp: (0,1) -3+8 = 5; (2,0) 0; (2,1) -3+8 = 5
        (2.0, 5 / 3),  # p = [-1/3, -2, -3]: (0,1) -1/3+2 = 5/3; (2,0) < 0; (2,1) -3+2 < 0
    ],
)
def test_hinge_length_penalty(alpha, expected):
    assert _loss(length_penalty=alpha).rank_loss.item() == pytest.approx(expected)


def test_hinge_margin():
    """margin 1: (0,1) 3+1 = 4; (2,0) -2+1 < 0 -> 0; (2,1) 1+1 = 2. L_rank = 6."""
    assert _loss(margin=1.0).rank_loss.item() == pytest.approx(6.0)


def test_logistic():
    """-log sigmoid(beta (p_j - p_i)): (0,1) p1-p0 = -3; (2,0) p0-p2 = 2; (2,1) p1-p2 = -1."""
    expected = math.log1p(math.exp(3)) + math.log1p(math.exp(-2)) + math.log1p(math.exp(1))
    assert _loss(rank_loss="logistic").rank_loss.item() == pytest.approx(expected, rel=1e-6)
    # beta 2, margin 0.5: -log sigmoid(2 (p_j - p_i) - 0.5)
    expected = math.log1p(math.exp(6.5)) + math.log1p(math.exp(-3.5)) + math.log1p(math.exp(2.5))
    assert _loss(rank_loss="logistic", beta=2.0, margin=0.5).rank_loss.item() == pytest.approx(expected, rel=1e-6)


def test_sft_sum_and_weights():
    """sum reduction: L_ft = 8. rank_weight 0.5, sft_weight 2: L = 0.5 * 4 + 2 * 8 = 18."""
    parts = _loss(sft_reduction="sum", rank_weight=0.5, sft_weight=2.0)
    assert parts.sft_loss.item() == pytest.approx(8.0)
    assert parts.loss.item() == pytest.approx(18.0)


def test_pure_ranking_and_pure_sft():
    assert _loss(sft_weight=0.0).loss.item() == pytest.approx(4.0)
    assert _loss(rank_weight=0.0).loss.item() == pytest.approx(4.0)  # SFT mean on the best: 8 / 2


def test_ties_contribute_nothing_and_best_is_the_first_argmax():
    """rewards [2, 2, 0]: the tie (0,1) is no pair; pairs (2,0): -3+1 < 0; (2,1): -3+4 = 1. b = 0: SFT 3/3."""
    parts = rrhf_loss(LossBatch(LOGP, LENGTHS, torch.tensor([2.0, 2.0, 0.0]), ONE_QUERY), LossSettings())
    assert parts.rank_loss.item() == pytest.approx(1.0)
    assert parts.sft_loss.item() == pytest.approx(1.0)
    assert parts.rank_pairs == 2


def test_two_queries_are_the_mean_of_each_alone():
    """Pairs never cross queries: the batch loss is the mean of the single-query losses, and so is the gradient."""
    logp_a = torch.tensor([-3.0, -8.0, -3.0], requires_grad=True)
    logp_b = torch.tensor([-2.0, -1.0], requires_grad=True)
    lengths_b, rewards_b = torch.tensor([2, 4]), torch.tensor([0.0, 5.0])
    settings = LossSettings(rank_loss="logistic", margin=0.2)
    batch = rrhf_loss(LossBatch(torch.cat([logp_a, logp_b]), torch.cat([LENGTHS, lengths_b]),
                                torch.cat([REWARDS, rewards_b]), torch.tensor([0, 0, 0, 1, 1])), settings)
    alone_a = rrhf_loss(LossBatch(logp_a, LENGTHS, REWARDS, ONE_QUERY), settings)
    alone_b = rrhf_loss(LossBatch(logp_b, lengths_b, rewards_b, torch.tensor([0, 0])), settings)
    assert batch.loss.item() == pytest.approx((alone_a.loss.item() + alone_b.loss.item()) / 2)
    (grad_batch_a, grad_batch_b) = torch.autograd.grad(batch.loss, [logp_a, logp_b])
    (grad_a,) = torch.autograd.grad(alone_a.loss, [logp_a])
    (grad_b,) = torch.autograd.grad(alone_b.loss, [logp_b])
    torch.testing.assert_close(grad_batch_a, grad_a / 2)
    torch.testing.assert_close(grad_batch_b, grad_b / 2)
    assert batch.rank_pairs == 4
