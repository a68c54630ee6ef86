"""What every stage that touches a model shares: prompt rendering, tokenised queries and their batches,
packing, the lean log-prob head, model loading and the KV-cache helpers."""
