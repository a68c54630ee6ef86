"""Stage implementations (sample, score, rank, train), importable without the CLI."""
