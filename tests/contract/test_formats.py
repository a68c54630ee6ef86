"""External formats are detected and mapped onto the contract (pure functions, literal inputs)."""

import pytest

from stages.contract.formats import (
    FormatError,
    detect_format,
    map_fields,
    parse_field_map,
    parse_hh_transcript,
    split_final_replies,
    to_contract,
)

HH_CHOSEN = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why did the fox jump?"
HH_REJECTED = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: No."


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "p", "responses": []}, "rrhf"),
        ({"prompt": "p"}, "trl-prompt"),
        ({"query": "q", "responses": ["a"], "scores": [1]}, "rrhf-reference"),
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "trl-preference"),
        ({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, "hh"),
    ],
)
def test_detect_format(row, expected):
    assert detect_format(row) == expected


def test_detect_format_names_the_fields_it_saw():
    with pytest.raises(FormatError, match=r"\(answer, question\)"):
        detect_format({"question": "q", "answer": "a"})


def test_reference_format_zips_scores_and_keeps_other_fields():
    fields = to_contract({"query": "Q", "responses": ["a", "b"], "scores": [0.5, -1], "topic": "x"}, "rrhf-reference")
    assert fields == {
        "topic": "x",
        "prompt": "Q",
        "responses": [{"text": "a", "source": "input", "score": 0.5}, {"text": "b", "source": "input", "score": -1}],
    }


def test_reference_length_mismatch_is_an_error():
    with pytest.raises(FormatError, match="'responses' has 2 items but 'scores' has 3"):
        to_contract({"query": "Q", "responses": ["a", "b"], "scores": [1, 2, 3]}, "rrhf-reference")


def test_trl_preference_string_with_scores():
    row = {"id": "7", "prompt": "P", "chosen": "good", "rejected": "bad", "score_chosen": 2.0, "score_rejected": 1.0}
    assert to_contract(row, "trl-preference") == {
        "id": "7",
        "prompt": "P",
        "responses": [
            {"text": "good", "source": "chosen", "score": 2.0},
            {"text": "bad", "source": "rejected", "score": 1.0},
        ],
    }


def test_trl_preference_conversational():
    prompt = [{"role": "user", "content": "Hi"}]
    row = {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": "Hello"}],
        "rejected": [{"role": "assistant", "content": "Go away"}],
    }
    fields = to_contract(row, "trl-preference")
    assert fields["prompt"] == prompt
    assert [r["text"] for r in fields["responses"]] == ["Hello", "Go away"]
    assert "score" not in fields["responses"][0]


def test_trl_preference_mixed_string_and_conversation_is_an_error():
    with pytest.raises(FormatError, match="'chosen' must be a list of messages"):
        to_contract({"prompt": [{"role": "user", "content": "Hi"}], "chosen": "a", "rejected": "b"}, "trl-preference")


def test_hh_transcript_splits_into_shared_prompt_and_final_turns():
    fields = to_contract({"chosen": HH_CHOSEN, "rejected": HH_REJECTED, "split": "test"}, "hh")
    assert fields["prompt"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert fields["responses"] == [
        {"text": "Why did the fox jump?", "source": "chosen"},
        {"text": "No.", "source": "rejected"},
    ]
    assert fields["split"] == "test"


def test_hh_implicit_prompt_conversations():
    chosen = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A1"}]
    rejected = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A2"}]
    fields = to_contract({"chosen": chosen, "rejected": rejected}, "hh")
    assert fields["prompt"] == [{"role": "user", "content": "Q"}]
    assert [r["text"] for r in fields["responses"]] == ["A1", "A2"]


def test_hh_conversations_that_diverge_early_are_an_error():
    other = HH_REJECTED.replace("Tell me a joke", "Tell me a story")
    with pytest.raises(FormatError, match="differ before their final assistant turn"):
        to_contract({"chosen": HH_CHOSEN, "rejected": other}, "hh")


def test_hh_text_without_turns_is_an_error():
    with pytest.raises(ValueError, match="not an HH transcript"):
        parse_hh_transcript("just some text")


def test_split_requires_a_final_assistant_turn():
    with pytest.raises(ValueError, match="must end with an assistant turn"):
        split_final_replies([{"role": "user", "content": "Q"}], [{"role": "user", "content": "Q"}])


def test_native_bare_string_responses_get_a_source():
    fields = to_contract({"prompt": "P", "responses": ["a", {"text": "b", "source": "gpt-4"}]}, "rrhf")
    assert fields["responses"] == [{"text": "a", "source": "input"}, {"text": "b", "source": "gpt-4"}]


def test_field_map_parses_items_and_the_prompt_field():
    assert parse_field_map(["chosen=pos", " rejected = neg "], "question") == {
        "chosen": "pos", "rejected": "neg", "prompt": "question"
    }
    assert parse_field_map([], None) == {}
    for bad, message in (("chosen", "FIELD=COLUMN"), ("=x", "FIELD=COLUMN"), ("answer=x", "'answer' is not a field")):
        with pytest.raises(ValueError, match=message):
            parse_field_map([bad])
    with pytest.raises(ValueError, match="disagree"):
        parse_field_map(["prompt=a"], "b")


def test_mapped_columns_are_renamed_before_detection():
    row = {"question": "2+2?", "pos": "4", "neg": "5", "topic": "math"}
    mapped = map_fields(row, {"prompt": "question", "chosen": "pos", "rejected": "neg"})
    assert mapped == {"prompt": "2+2?", "chosen": "4", "rejected": "5", "topic": "math"}
    assert detect_format(mapped) == "trl-preference"
    assert map_fields({"chosen": "a", "rejected": "b"}, {"chosen": "rejected", "rejected": "chosen"}) == {
        "chosen": "b", "rejected": "a"
    }
    with pytest.raises(FormatError, match="no column 'question'.*the row has instruction"):
        map_fields({"instruction": "x"}, {"prompt": "question"})


def test_only_a_length_finish_reason_marks_a_response_cut():
    """rrhf's "length" is a cut; its "stop", another tool's value and no value at all are ended answers, and every
    value is written back as it came."""
    from stages.contract.schema import Record

    reasons = ["length", "stop", "eos_token", None]
    record = Record(id="r", prompt="P", responses=[
        {"text": str(i), **({} if reason is None else {"finish_reason": reason})} for i, reason in enumerate(reasons)])
    assert [r.ended for r in record.responses] == [False, True, True, True]
    assert [r.get("finish_reason") for r in record.to_json_dict()["responses"]] == reasons
