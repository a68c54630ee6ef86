"""Example rule-based rewards for `rrhf score --backend python --fn examples/rewards.py:NAME`."""


def concise(prompt, response: str) -> float:
    """Prefers answers of about eight words: 0 at eight, one point lost per word away from it."""
    return -abs(len(response.split()) - 8)


def vowels(prompt, response: str) -> float:
    """The share of letters that are vowels: a property a tiny random model can learn in minutes (the demo)."""
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)
