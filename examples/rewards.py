"""Example rule-based rewards for `rrhf score --backend python --fn examples/rewards.py:NAME`."""


def concise(prompt, response: str) -> float:
    """Prefers answers of about eight words: 0 at eight, one point lost per word away from it."""
    return -abs(len(response.split()) - 8)
