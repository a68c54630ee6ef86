"""`rrhf cache ls` and `rrhf cache clean`: the train data cache between runs."""

from __future__ import annotations

import json
import time

from rrhf_cli.options import JsonOpt, command
from stages.runtime.console import output_console
from stages.train.cache_admin import CleanConfig


@command()
def cache_ls_command(json_output: JsonOpt = False) -> None:
    """List the prepared training data kept in the cache ($RRHF_CACHE/train-data), most recently used first.

    Examples:

    \b
        rrhf cache ls
        rrhf cache ls --json | jq '.[].size'
    """
    from stages.train.cache import cache_root
    from stages.train.cache_admin import listing

    rows = listing(cache_root(), time.time())
    if json_output:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("key", "records", "queries", "size", "last used", title=str(cache_root() / "train-data"),
                  title_justify="left")
    for row in rows:
        table.add_row(str(row["key"])[:16], str(row["records"] or "incomplete"), str(row["queries"] or ""),
                      str(row["size"]), str(row["last_used"]))
    output_console().print(table)


@command(CleanConfig)
def cache_clean_command(config: CleanConfig) -> None:
    """Remove prepared training data from the cache: all of it, what no run used for DAYS days, or the least
    recently used beyond a size. A run already training on a removed folder is not disturbed.

    Examples:

    \b
        rrhf cache clean --older-than 30
        rrhf cache clean --max-size 20G --dry-run
        rrhf cache clean --all
    """
    from stages.train.cache import cache_root
    from stages.train.cache_admin import clean

    clean(cache_root(), config, time.time())
