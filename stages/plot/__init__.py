"""`rrhf plot`: training curves from metrics.jsonl and reward histograms from scored files, as PNG."""
