"""`rrhf eval`: sample from a model (and a baseline), score, and report mean reward, win rate and perplexity."""
