"""The `rrhf` command line: option parsing and one command per stage; the work is done in `stages`."""

from stages.contract import __version__

__all__ = ["__version__"]
