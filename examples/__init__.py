"""The demos, run from the repository root as `python -m examples.demo` and `python -m examples.demo_real`
(what `make demo` and `make demo-real` run); recipes and data beside them."""
