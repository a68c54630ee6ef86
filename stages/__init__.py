"""Everything below the command line, importable without it: `core` (the artifact contract and run machinery) at
the ground floor, `lm` and `engines` (model code, outside engines) above it, one package per stage above those,
and `eval`, which composes two stages, on top. Imports only point down (tests/test_layout.py)."""
