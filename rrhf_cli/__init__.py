"""The `rrhf` command line: option parsing and one command per stage; the work is done in `stages`."""

from rrhf_cli.own_stages import refuse_shadowed_stages

refuse_shadowed_stages()  # before the first `import stages`: a user's folder of that name must not run

from stages.contract import __version__  # noqa: E402

__all__ = ["__version__"]
