"""`rrhf cache ls` and `rrhf cache clean`: the train data cache between runs."""

from __future__ import annotations

import time

from rrhf_cli.options import JsonOpt, command
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
    from stages.train.cache_admin import show_listing

    show_listing(cache_root(), time.time(), json_output)


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
