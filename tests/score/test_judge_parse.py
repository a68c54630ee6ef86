"""Judge answers in the shapes judges really give, and the ones that must be refused."""

import pytest

from stages.score.judge_parse import parse_listwise, parse_pointwise
from stages.score.judge_prompts import POINTWISE, render


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The answer is accurate and kind.\nScore: 8", 8.0),
        ("Score: 3\nOn reflection, Score: 7.5", 7.5),  # the last line wins
        ('{"reasoning": "fine", "score": 6}', 6.0),
        ('Here you go:\n```json\n{"rating": 9}\n```', 9.0),
        ("**Score:** 4", 4.0),
        ("score = -2", -2.0),
    ],
)
def test_pointwise_reads_json_or_a_score_line(answer, expected):
    assert parse_pointwise(answer) == expected


@pytest.mark.parametrize("answer", ["I think it is good.", "Score: high", '{"score": "NaN"}', '{"score": true}'])
def test_pointwise_refuses_what_it_cannot_read(answer):
    with pytest.raises(ValueError):
        parse_pointwise(answer)


def test_listwise_reads_json_lists_and_score_lines():
    assert parse_listwise('{"scores": [7, 3, 9]}', 3) == [7.0, 3.0, 9.0]
    assert parse_listwise("Sure! [2, 5]", 2) == [2.0, 5.0]
    assert parse_listwise("Answer 1 Score: 4\nAnswer 2 Score: 6", 2) == [4.0, 6.0]
    with pytest.raises(ValueError, match="expected 3 scores, the answer has 2"):
        parse_listwise('{"scores": [1, 2]}', 3)
    with pytest.raises(ValueError):
        parse_listwise("Score: 4", 2)


def test_render_fills_the_rubric():
    text = render(POINTWISE, "What is 2+2?", ["4"])
    assert "What is 2+2?" in text and "[Answer]\n4" in text and "Score: N" in text
