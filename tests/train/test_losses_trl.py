"""DPO and SimPO equal TRL's losses on the same tensors (TRL is installed with the vllm extra: `make test-vllm`'s
environment; skipped where it is absent)."""

import pytest
import torch

from stages.lm.logprobs import response_logprobs
from stages.lm.packing import collate
from stages.lm.queries import Query
from stages.train.losses.common import LossBatch, LossSettings
from stages.train.losses.dpo import dpo_loss
from stages.train.losses.simpo import simpo_loss

trl = pytest.importorskip("trl")


def _queries(batch):
    """TRL's DPO batch (rows: the chosen completions, then the rejected, prompt first) as our queries."""
    ids, present, completion = batch["input_ids"], batch["attention_mask"].bool(), batch["completion_mask"].bool()
    pairs = len(ids) // 2
    queries = []
    for q in range(pairs):
        prompt = ids[q][present[q] & ~completion[q]].tolist()
        assert prompt == ids[q + pairs][present[q + pairs] & ~completion[q + pairs]].tolist()
        responses = [ids[row][completion[row]].tolist() for row in (q, q + pairs)]
        queries.append(Query(prompt, responses, rewards=[1.0, 0.0]))
    return queries


def test_dpo_equals_trls_dpo_trainer(tiny_models, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    policy = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float()
    reference = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a policy apart from its reference, so the implicit rewards are not all zero
        for parameter in policy.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    rows = [{"prompt": "Say hello.", "chosen": " hello there", "rejected": " go away now"},
            {"prompt": "Name a fruit.", "chosen": " apple", "rejected": " a red car"}]
    args = DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, per_device_train_batch_size=2, report_to="none",
                     use_cpu=True)
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch)
        collated = collate(_queries(batch), tokenizer.pad_token_id, packed=False)
        logp = response_logprobs(policy.eval(), collated, None)
        ref_logp = response_logprobs(reference, collated, None)
    ours = dpo_loss(LossBatch.collated(collated | {"ref_logps": ref_logp}, logp),
                    LossSettings(beta=0.1, sft_weight=0.0))
    assert abs(theirs.item() - torch.log(torch.tensor(2.0)).item()) > 1e-3  # not the trivial value
    assert ours.loss.item() == pytest.approx(theirs.item(), abs=1e-5)


def _cpo_simpo(mean_chosen, mean_rejected):
    from types import SimpleNamespace

    from trl.experimental.cpo import CPOTrainer

    cpo = SimpleNamespace(alpha=0.0, beta=2.0, simpo_gamma=1.0, label_smoothing=0.0, loss_type="simpo",
                          accelerator=SimpleNamespace(device=torch.device("cpu")))
    losses, _, _ = CPOTrainer.cpo_loss(cpo, mean_chosen, mean_rejected)
    return losses


LOGP, LENGTHS = torch.tensor([-6.0, -9.0, -2.0, -7.5]), torch.tensor([3, 4, 2, 5])  # (chosen, rejected) x 2
SETTINGS = dict(beta=2.0, gamma=1.0)


def test_simpo_equals_trls_cpo_simpo_loss():
    """TRL's CPOTrainer.cpo_loss (loss_type "simpo", simpo_gamma = gamma) on the mean log-probs of two pairs."""
    mean = LOGP / LENGTHS
    theirs = _cpo_simpo(mean[[0, 2]], mean[[1, 3]]).mean()
    ours = simpo_loss(LossBatch(LOGP, LENGTHS, torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0, 0, 1, 1])),
                      LossSettings(**SETTINGS, sft_weight=0.0))
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("pair", [0, 1])
def test_simpo_with_sft_equals_cpo_simpo_on_one_pair(pair):
    """With --sft-weight (TRL's cpo_alpha): TRL adds its NLL of the chosen tokens, which for one pair is minus the
    chosen's mean log-prob. (Over several pairs TRL averages that NLL over all chosen tokens of the batch, here
    over queries: the two differ when the chosen lengths do.)"""
    logp, lengths = LOGP[2 * pair : 2 * pair + 2], LENGTHS[2 * pair : 2 * pair + 2]
    mean = logp / lengths
    theirs = _cpo_simpo(mean[:1], mean[1:]).mean() + 0.7 * -mean[0]
    ours = simpo_loss(LossBatch(logp, lengths, torch.tensor([1.0, 0.0]), torch.tensor([0, 0])),
                      LossSettings(**SETTINGS, sft_weight=0.7))
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-6)
