"""From generated ids to a response: its text and whether the token limit cut it."""

import pytest
from transformers import AutoTokenizer

from stages.sample.decoding import Completion, completion, decode_response


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return AutoTokenizer.from_pretrained(tiny_models.policy)


def test_the_finish_reason_says_whether_an_end_or_the_limit_stopped_the_response(tokenizer):
    """With a limit of 4: ids [a, b, EOS, c] end at EOS ("stop", text "ab"); [a, b, c, d] ran into the limit
    ("length"); [a, b] stopped before it, so the engine ended them ("stop"); [a, b, c, d] whose text holds a
    stop string end there ("stop")."""
    a, b, c, d = (tokenizer(x, add_special_tokens=False)["input_ids"][0] for x in ("a", "b", "c", "d"))
    eos = {tokenizer.eos_token_id}

    def decode(ids, stops=()):
        return decode_response(tokenizer, ids, eos, stops, limit=4)

    assert decode([a, b, tokenizer.eos_token_id, c]) == Completion("ab", "stop")
    assert decode([a, b, c, d]) == Completion("abcd", "length")
    assert decode([a, b]) == Completion("ab", "stop")
    assert decode([a, b, c, d], stops=["c"]) == Completion("ab", "stop")


def test_a_stop_string_ends_a_text_the_limit_also_reached():
    """A server that reached its token limit ("length") but returned a stop string the client cut at: "ab" and
    ended, as `decode_response` says of the same ids; without the stop string the limit cut it. A server's own
    reason is kept ("content_filter"), and a missing one reads as "stop"."""
    assert completion("abcd", ["c"], "length") == Completion("ab", "stop")
    assert completion("abcd", ["x"], "length") == Completion("abcd", "length")
    assert completion("abcd", ["x"], "stop") == Completion("abcd", "stop")
    assert completion("abcd", [], "content_filter") == Completion("abcd", "content_filter")
    assert completion("abcd", ["c"], "content_filter") == Completion("ab", "stop")
    assert completion("abcd", [], None) == Completion("abcd", "stop")
