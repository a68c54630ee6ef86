"""Example rule-based rewards for `rrhf score --scorer python --fn examples/rewards.py:NAME`."""

import functools
import math
import re


def concise(prompt, response: str) -> float:
    """Prefers answers of about eight words: 0 at eight, one point lost per word away from it."""
    return -abs(len(response.split()) - 8)


def vowels(prompt, response: str) -> float:
    """The share of letters that are vowels: a property a tiny random model can learn in minutes (the demo)."""
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)



def arithmetic(prompt, response: str) -> float:
    """How close the answer's result is to the sum the prompt asks for ("What is A + B?"): exp(-|claimed - sum| / 10),
    where the claimed result is the first number in the answer other than A and B; 0 for an answer with none.
    Only that one number counts, so a longer answer earns nothing by being longer.

    >>> arithmetic("What is 12 + 30?", "12 + 30 = 42."), round(arithmetic("What is 12 + 30?", "It is 52"), 3)
    (1.0, 0.368)
    """
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    a, b = (int(n) for n in re.findall(r"-?\d+", text)[:2])
    claimed = [int(n) for n in re.findall(r"-?\d+", response) if int(n) not in (a, b)]
    return math.exp(-abs(claimed[0] - (a + b)) / 10) if claimed else 0.0


def positivity(prompt, response: str) -> float:
    """VADER's compound sentiment of the answer, from -1 (negative) to 1 (positive): a warm, encouraging tone.
    Needs `pip install vaderSentiment` (the reward of `make demo-real`)."""
    return float(_vader().polarity_scores(response)["compound"])


@functools.cache
def _vader():  # -> SentimentIntensityAnalyzer, built once: it reads its lexicon from disk
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()
