"""Example rule-based rewards for `rrhf score --scorer python --fn examples/rewards.py:NAME`."""

import functools


def concise(prompt, response: str) -> float:
    """Prefers answers of about eight words: 0 at eight, one point lost per word away from it."""
    return -abs(len(response.split()) - 8)


def vowels(prompt, response: str) -> float:
    """The share of letters that are vowels: a property a tiny random model can learn in minutes (the demo)."""
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)



def positivity(prompt, response: str) -> float:
    """VADER's compound sentiment of the answer, from -1 (negative) to 1 (positive): a warm, encouraging tone.
    Needs `pip install vaderSentiment` (the reward of `make demo-real`)."""
    return float(_vader().polarity_scores(response)["compound"])


@functools.cache
def _vader():  # -> SentimentIntensityAnalyzer, built once: it reads its lexicon from disk
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()
