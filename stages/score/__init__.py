"""`rrhf score`: a finite reward for every response, from a reward model, an LLM judge, a log-prob or a function."""
