"""The worked examples in docstrings are tests too: each module listed here runs its own."""

import doctest
import importlib

import pytest

MODULES = [
    "bench.bench_efficacy", "bench.efficacy_files", "bench.efficacy_methods", "bench.efficacy_stats", "bench.flops",
    "examples.rewards",
    "rrhf_cli.own_stages",
    "stages.contract.errors", "stages.contract.schema", "stages.report.paired", "stages.report.summary",
    "stages.runtime.hub", "stages.runtime.launch", "stages.runtime.memory", "stages.runtime.outputs",
    "stages.runtime.resolve", "stages.runtime.shares",
    "stages.train.cache_admin", "stages.train.reference",
    "tests.test_docs", "tests.test_layout",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
