"""The losses beside RRHF's against hand computations on one query of three responses, and their batch rules.

Shared example (as tests/train/test_loss.py):
    logp_sum = [-3, -8, -3], lengths = [3, 2, 1]  ->  mean log-probs a = [-1, -4, -3]
    rewards  = [ 1,  2,  0]                       ->  order best first: 1, 0, 2; best 1 (SFT mean NLL 8/2 = 4)
    ref      = [-4, -6, -3]                       ->  logp - ref = [1, -2, 0]; beta 1: s = [1, -2, 0]
"""

import math
from dataclasses import replace

import pytest
import torch

from stages.train.losses.common import LossBatch, LossSettings
from stages.train.losses.compute import LOSSES
from stages.train.losses.dpo import dpo_loss
from stages.train.losses.lipo import lipo_loss
from stages.train.losses.listmle import listmle_loss
from stages.train.losses.pro import pro_loss
from stages.train.losses.simpo import simpo_loss

LOGP = torch.tensor([-3.0, -8.0, -3.0])
LENGTHS = torch.tensor([3, 2, 1])
REWARDS = torch.tensor([1.0, 2.0, 0.0])
REF = torch.tensor([-4.0, -6.0, -3.0])
ONE_QUERY = torch.tensor([0, 0, 0])
ONE = LossBatch(LOGP, LENGTHS, REWARDS, ONE_QUERY, ref_logp=REF)  # one query of three responses


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_pro():
    """s = a = [-1, -4, -3]. Position 1 (response 1, r 2): T to 0 is 1, to 2 is 2, T_kk = 2:
    log(e^(-4*2) + e^(-1*1) + e^(-3*2)) + 8. Position 2 (response 0, r 1): T to 2 is 1 = T_kk:
    log(e^(-1) + e^(-3)) + 1. Last position: nothing. SFT: 0.05 (default) x (3 - 1)^2 x 4 = 0.8."""
    rank = math.log(math.exp(-8) + math.exp(-1) + math.exp(-6)) + 8 + math.log(math.exp(-1) + math.exp(-3)) + 1
    parts = pro_loss(LossBatch(LOGP, LENGTHS, REWARDS, ONE_QUERY), LossSettings(sft_weight=0.05))
    assert parts.rank_loss.item() == pytest.approx(rank, rel=1e-6)
    assert parts.sft_loss.item() == pytest.approx(4.0)
    assert parts.loss.item() == pytest.approx(rank + 0.8, rel=1e-6)
    assert (parts.rank_correct, parts.rank_pairs) == (1, 3)  # a orders only (0 over 2) right


def test_pro_ties_carry_no_preference():
    """rewards [1, 1, 0]: response 0 first, then 1 (input order), then 2. Position 0: T to 1 is 0, to 2 is 1,
    T_kk = 1: log(e^(-1) + e^0 + e^(-3)) + 1. Position 1: T to 2 is 1: log(e^(-4) + e^(-3)) + 4."""
    rank = math.log(math.exp(-1) + 1 + math.exp(-3)) + 1 + math.log(math.exp(-4) + math.exp(-3)) + 4
    parts = pro_loss(LossBatch(LOGP, LENGTHS, torch.tensor([1.0, 1.0, 0.0]), ONE_QUERY), LossSettings(sft_weight=0.0))
    assert parts.loss.item() == pytest.approx(rank, rel=1e-6)


def test_listmle():
    """s = [1, -2, 0]. Response 1 over {1, 0, 2}: log(e^-2 + e + 1) + 2; response 0 over {0, 2}:
    log(e + 1) - 1; response 2 alone: 0."""
    expected = math.log(math.exp(-2) + math.e + 1) + 2 + math.log(math.e + 1) - 1
    parts = listmle_loss(ONE, LossSettings(beta=1.0, sft_weight=0.0))
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts.p_best.item() == pytest.approx(-2.0) and parts.p_worst.item() == pytest.approx(0.0)
    half = listmle_loss(ONE, LossSettings(beta=0.5, sft_weight=0.0))
    # beta 0.5: s = [0.5, -1, 0]
    expected = math.log(math.exp(-1) + math.exp(0.5) + 1) + 1 + math.log(math.exp(0.5) + 1) - 0.5
    assert half.loss.item() == pytest.approx(expected, rel=1e-6)


def test_listmle_ties_are_not_ordered():
    """rewards [1, 1, 0]: responses 0 and 1 each over themselves and 2 only: log(e + 1) - 1 and
    log(e^-2 + 1) + 2; a query whose rewards all tie adds nothing."""
    expected = math.log(math.e + 1) - 1 + math.log(math.exp(-2) + 1) + 2
    settings = LossSettings(beta=1.0, sft_weight=0.0)
    parts = listmle_loss(LossBatch(LOGP, LENGTHS, torch.tensor([1.0, 1.0, 0.0]), ONE_QUERY, ref_logp=REF), settings)
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    tied = listmle_loss(LossBatch(LOGP, LENGTHS, torch.zeros(3), ONE_QUERY, ref_logp=REF), settings)
    assert tied.loss.item() == 0.0


def test_lipo():
    """s = [1, -2, 0] ranks responses 0, 2, 1 (tau 1, 3, 2): 1/D = [1, 1/log2(4), 1/log2(3)] = [1, 0.5, 0.63093].
    G = 2^r - 1 = [1, 3, 0]. Pairs by reward (better, worse):
    (1, 0): |3 - 1| |0.5 - 1| = 1,                 s_1 - s_0 = -3: log(1 + e^3)
    (1, 2): |3 - 0| |0.5 - 1/log2 3| = 0.39279,     s_1 - s_2 = -2: log(1 + e^2)
    (0, 2): |1 - 0| |1 - 1/log2 3| = 0.36907,       s_0 - s_2 = 1:  log(1 + e^-1)"""
    inv3 = 1 / math.log2(3)
    expected = 1 * softplus(3) + 3 * abs(0.5 - inv3) * softplus(2) + (1 - inv3) * softplus(-1)
    parts = lipo_loss(ONE, LossSettings(beta=1.0, sft_weight=0.0))
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    assert (parts.rank_correct, parts.rank_pairs) == (1, 3)


def test_lipo_weights_are_constants():
    """The lambda weights use the rank detached: the gradient is that of the weighted logistic terms alone.
    d/ds_1 of 1 * log(1 + e^(s_0 - s_1)) + w12 log(1 + e^(s_2 - s_1)) = -sigmoid(3) - w12 sigmoid(2)."""
    logp = LOGP.clone().requires_grad_()
    parts = lipo_loss(replace(ONE, logp_sum=logp), LossSettings(beta=1.0, sft_weight=0.0))
    (grad,) = torch.autograd.grad(parts.loss, [logp])
    w12 = 3 * abs(0.5 - 1 / math.log2(3))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert grad[1].item() == pytest.approx(-sigmoid(3) - w12 * sigmoid(2), rel=1e-5)


def test_dpo():
    """beta 0.1: implicit rewards 0.1 (logp - ref) = [0.1, -0.2, 0]. Pairs (worse, better): (0, 1): -0.3;
    (2, 0): 0.1; (2, 1): -0.2; each -log sigmoid(gap) = log(1 + e^-gap); the query's loss is their mean."""
    expected = (softplus(0.3) + softplus(-0.1) + softplus(0.2)) / 3
    parts = dpo_loss(ONE, LossSettings(beta=0.1, sft_weight=0.0))
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    assert (parts.rank_correct, parts.rank_pairs) == (1, 3)
    chosen = dpo_loss(replace(ONE, pairs=torch.tensor([[0, 2]])), LossSettings(beta=0.1, sft_weight=0.0))
    assert chosen.loss.item() == pytest.approx(softplus(-0.1), rel=1e-6)  # the given pair alone


def test_simpo_and_its_sft():
    """beta 2, gamma 1 on a = [-1, -4, -3]: (w 1, l 0): 2 (-3) - 1 = -7; (w 0, l 2): 2 (2) - 1 = 3;
    (w 1, l 2): 2 (-1) - 1 = -3; -log sigmoid(x) = log(1 + e^-x), mean of 3. sft-weight 0.5 adds 0.5 x 4."""
    expected = (softplus(7) + softplus(-3) + softplus(3)) / 3
    parts = simpo_loss(LossBatch(LOGP, LENGTHS, REWARDS, ONE_QUERY), LossSettings(beta=2.0, gamma=1.0, sft_weight=0.0))
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    with_sft = simpo_loss(ONE, LossSettings(beta=2.0, gamma=1.0, sft_weight=0.5))
    assert with_sft.loss.item() == pytest.approx(expected + 2.0, rel=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_anchor_adds_the_mean_nll_of_every_response(name):
    """Per-token NLL of the three responses -logp / |y| = [1, 4, 3], their mean 8/3; summed NLL [3, 8, 3], mean
    14/3. anchor-weight 0.5 adds half of either to any loss, whatever its own terms."""
    settings = LossSettings(beta=0.7, gamma=0.3, sft_weight=0.2)
    plain = LOSSES[name](ONE, settings).loss.item()
    anchored = LOSSES[name](ONE, replace(settings, anchor_weight=0.5)).loss.item()
    assert anchored == pytest.approx(plain + 0.5 * 8 / 3, rel=1e-6)
    summed = replace(settings, sft_reduction="sum")
    anchored = LOSSES[name](ONE, replace(summed, anchor_weight=0.5)).loss.item()
    assert anchored == pytest.approx(LOSSES[name](ONE, summed).loss.item() + 0.5 * 14 / 3, rel=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_two_queries_are_the_mean_of_each_alone(name):
    """k differs per query (3 and 2); nothing crosses queries: the batch loss is the mean of the two alone."""
    settings = LossSettings(beta=0.7, gamma=0.3, sft_weight=0.2, anchor_weight=0.1)
    loss = LOSSES[name]
    logp_b, lengths_b, rewards_b, ref_b = (torch.tensor([-2.0, -1.0]), torch.tensor([2, 4]), torch.tensor([0.0, 0.5]),
                                           torch.tensor([-1.5, -1.5]))
    batch = loss(LossBatch(torch.cat([LOGP, logp_b]), torch.cat([LENGTHS, lengths_b]), torch.cat([REWARDS, rewards_b]),
                           torch.tensor([0, 0, 0, 1, 1]), ref_logp=torch.cat([REF, ref_b])), settings)
    alone_a = loss(ONE, settings)
    alone_b = loss(LossBatch(logp_b, lengths_b, rewards_b, torch.tensor([0, 0]), ref_logp=ref_b), settings)
    assert batch.loss.item() == pytest.approx((alone_a.loss.item() + alone_b.loss.item()) / 2, rel=1e-6)
    assert batch.rank_pairs == alone_a.rank_pairs + alone_b.rank_pairs


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sft_targets_leave_out_the_sft_term_of_a_query_whose_best_is_not_one(name):
    """Query a is ONE (best: response 1, mean NLL 8/2 = 4), query b two responses (best: its second, NLL 1/4).
    Marking every response but a's best as a target leaves out a's SFT term alone: sft_weight 0.2 x 4 over 2
    queries = 0.4 (pro scales a's term by (3 - 1)^2 = 4: 1.6). Every response a target changes nothing."""
    settings = LossSettings(beta=0.7, gamma=0.3, sft_weight=0.2)
    batch = LossBatch(torch.cat([LOGP, torch.tensor([-2.0, -1.0])]), torch.cat([LENGTHS, torch.tensor([2, 4])]),
                      torch.cat([REWARDS, torch.tensor([0.0, 0.5])]), torch.tensor([0, 0, 0, 1, 1]),
                      ref_logp=torch.cat([REF, torch.tensor([-1.5, -1.5])]))
    every = LOSSES[name](batch, settings)
    limited = LOSSES[name](replace(batch, sft_targets=torch.tensor([True, False, True, False, True])), settings)
    assert limited.loss.item() == pytest.approx(every.loss.item() - (1.6 if name == "pro" else 0.4), rel=1e-6)
    assert limited.rank_loss.item() == pytest.approx(every.rank_loss.item(), rel=1e-6)
    all_targets = LOSSES[name](replace(batch, sft_targets=torch.ones(5, dtype=torch.bool)), settings)
    assert all_targets.loss.item() == pytest.approx(every.loss.item(), rel=1e-6)
