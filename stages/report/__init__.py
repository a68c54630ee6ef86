"""Reporting shared by the commands that summarise artifacts: per-file statistics, and one model against another
paired over prompts."""
