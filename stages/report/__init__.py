"""Reporting shared by the commands that summarise artifacts: per-file statistics and win rates."""
