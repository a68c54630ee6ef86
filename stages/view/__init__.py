"""The view stage: one self-contained HTML page to read samples, scores, pairs and before/after answers."""
