"""The fixture models are real transformers checkpoints that load from their folders."""

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer


def test_tokenizer_round_trips_any_utf8_and_renders_chat(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    text = "naïve café — 数学 🙂"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|user|>Hi<|end|><|assistant|>"
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token == "<pad>"


def test_policy_generates_and_reward_model_gives_one_score(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    ids = tokenizer(["hello world", "the fox"], return_tensors="pt", padding=True)
    policy = AutoModelForCausalLM.from_pretrained(tiny_models.policy)
    out = policy.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (2, ids.input_ids.shape[1] + 3)
    reward = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward)
    assert reward.config.num_labels == 1
    with torch.no_grad():
        logits = reward(**ids).logits
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
