"""Bad inputs get one line naming the file and line, exit status 2, and no traceback."""

import pytest

BAD = {
    "invalid JSON": ('{"prompt": "a"}\n{"prompt": }\n', ":2: invalid JSON"),
    "not an object": ('{"prompt": "a"}\n[1, 2]\n', ":2: expected a JSON object, got a list"),
    "missing prompt": ('{"prompt": "a", "responses": []}\n{"responses": []}\n', ":2: 'prompt' is missing"),
    "null prompt": ('{"prompt": null}\n', ":1: 'prompt' is null"),
    "prompt wrong type": ('{"prompt": 3}\n', ":1: 'prompt' must be a string or a list of {role, content} messages"),
    "message without content": ('{"prompt": [{"role": "user"}]}\n', ":1: 'prompt[0].content' is missing"),
    "responses wrong type": ('{"prompt": "a", "responses": {"text": "x"}}\n', ":1: 'responses' must be a list"),
    "response text wrong type": ('{"prompt": "a", "responses": [{"text": 5}]}\n', ":1: 'responses[0].text'"),
    "length mismatch": ('{"query": "q", "responses": ["a", "b"], "scores": [1]}\n', "'scores' has 1"),
    "NaN score": (
        '{"prompt": "a", "responses": [{"text": "x", "score": NaN}]}\n',
        ":1: 'responses[0].score' is NaN, which JSON does not allow",
    ),
    "infinite score": (
        '{"query": "q", "responses": ["a"], "scores": [-Infinity]}\n',
        ":1: 'scores[0]' is an infinity, which JSON does not allow",
    ),
    "non-numeric score": (
        '{"prompt": "a", "responses": [{"text": "x", "score": "high"}]}\n',
        "'responses[0].score': input should be a valid number",
    ),
    "boolean score": (
        '{"prompt": "a", "responses": [{"text": "x", "score": true}]}\n',
        "must be a number, not a boolean",
    ),
    "duplicate id": ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', ":2: duplicate id 'a'"),
    "empty file": ("\n", ": no records (the input is empty)"),
    "not UTF-8": ('{"prompt": "a"}\n{"prompt": "\xff"}\n', ":2: not UTF-8 text"),
    "lone surrogate": (
        '{"prompt": "a"}\n{"prompt": "x\\ud800y"}\n', ":2: 'prompt' holds invalid Unicode (a lone surrogate)"
    ),
    "lone surrogate in a response": (
        '{"prompt": "a", "responses": [{"text": "\\ud83d\\ude00"}, {"text": "\\udc00"}]}\n',
        ":1: 'responses[1].text' holds invalid Unicode (a lone surrogate)",
    ),
    "nested 100,000 levels deep": (
        '{"prompt": "a"}\n{"prompt": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        ":2: nested too deeply (more than 100 levels)",
    ),
    "unterminated string": (
        '{"prompt": "a"}\n{"prompt": "abc', ":2: invalid JSON (Unterminated string starting at column 12)"
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_with_exit_2(case, tmp_path, cli):
    text, expected = BAD[case]
    path = tmp_path / "in.jsonl"
    path.write_bytes(text.encode("latin-1") if case == "not UTF-8" else text.encode("utf-8"))
    result = cli("inspect", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"rrhf: error: {path}")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path, cli):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": null}\n')
    from stages.contract.errors import BadInput

    with pytest.raises(BadInput):
        cli("inspect", path, "--debug")


def test_unknown_input_format_is_a_usage_error(tmp_path, cli):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "a"}\n')
    result = cli("inspect", path, "--input-format", "yaml")
    assert result.exit_code == 2
