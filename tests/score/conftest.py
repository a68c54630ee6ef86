"""The samples file the score stage's tests read."""

import pytest

SAMPLES = [
    {"id": "a", "prompt": "Say hello.", "topic": "t", "responses": [
        {"text": "hello there", "source": "m"}, {"text": "hi", "source": "m"}, {"text": "go away", "source": "h"},
    ]},
    {"id": "b", "prompt": [{"role": "user", "content": "Name a fruit."}], "responses": [
        {"text": "apple", "source": "m"}, {"text": "a red apple from the orchard", "source": "m"},
    ]},
]


@pytest.fixture
def samples(write_jsonl):
    return write_jsonl("samples.jsonl", SAMPLES)
