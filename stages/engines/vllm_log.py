"""vLLM's error records, kept in a file as well as shown, so a failed engine is reported by its root cause.

vLLM's engine runs in other processes; when it fails, the exception the caller gets says only "see stack trace
(above)", and the root cause was logged by the engine process. vLLM configures its logging from a dictConfig
named by `VLLM_LOGGING_CONFIG_PATH`, which its processes inherit: an `ErrorLog` writes vLLM's own default
configuration, with the console on stderr (stdout stays clean for pipes) and one more handler that appends every
ERROR record to a file of its own, each record opened by a separator. `root_cause` reads the first record written
after a mark.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

SEPARATOR = "\x1e"  # ASCII record separator: no log line holds it


class ErrorLog:
    """A folder holding vLLM's logging configuration and the error file it appends to; removed on exit, with the
    file's handler taken off vLLM's logger in this process."""

    def __init__(self, vllm_logger: Any, level: str) -> None:
        self._vllm_logger = vllm_logger
        self.level = level
        self.folder: Path | None = None

    def __enter__(self) -> ErrorLog:
        self.folder = Path(tempfile.mkdtemp(prefix="rrhf-vllm-"))
        config = logging_config(self._vllm_logger.DEFAULT_LOGGING_CONFIG, self.level, self.errors)
        self.config_path.write_text(json.dumps(config), encoding="utf-8")
        self.errors.touch()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        vllm = logging.getLogger("vllm")
        for handler in list(vllm.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == self.errors:
                vllm.removeHandler(handler)
                handler.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def errors(self) -> Path:
        """The error file."""
        assert self.folder is not None, "ErrorLog used outside its block"
        return self.folder / "errors.log"

    @property
    def config_path(self) -> Path:
        """The dictConfig file vLLM's processes read."""
        assert self.folder is not None, "ErrorLog used outside its block"
        return self.folder / "logging.json"

    def environment(self) -> dict[str, str]:
        """What vLLM reads its logging configuration from, here and in the engine processes it starts."""
        return {"VLLM_CONFIGURE_LOGGING": "1", "VLLM_LOGGING_CONFIG_PATH": str(self.config_path)}

    def apply_here(self) -> None:
        """Configure this process's vLLM logging (with `environment()` set): vLLM 0.3x applies its configuration
        when asked (its record factory adds fields the formatters use)."""
        configure = getattr(self._vllm_logger, "configure_logging", None)
        if callable(configure):
            from vllm.config.logging import LoggingConfig

            configure(LoggingConfig())

    def mark(self) -> int:
        """Where the error file ends now: what `root_cause` reads from."""
        return self.errors.stat().st_size if self.errors.exists() else 0

    def root_cause(self, since: int) -> str | None:
        """The first error vLLM logged after `since`, as one line: the exception a traceback ends with, else the
        message's first line; None when nothing was logged."""
        if not self.errors.exists():
            return None
        with self.errors.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode("utf-8", errors="replace")
        return first_cause(text)


def logging_config(default: dict[str, Any], level: str, errors: Path) -> dict[str, Any]:
    """vLLM's `default` dictConfig at `level`, its console on stderr, and every ERROR record appended to `errors`."""
    config = copy.deepcopy(default)
    console = config["handlers"]["vllm"]
    console["stream"], console["level"] = "ext://sys.stderr", level
    for formatter in config["formatters"].values():
        formatter["log_level"] = level
    config["formatters"]["rrhf_errors"] = {"format": SEPARATOR + "%(message)s"}
    config["handlers"]["rrhf_errors"] = {
        "class": "logging.FileHandler", "filename": str(errors), "level": "ERROR", "formatter": "rrhf_errors",
        "encoding": "utf-8",
    }
    config["loggers"]["vllm"]["handlers"].append("rrhf_errors")
    config["loggers"]["vllm"]["level"] = level
    return config


def first_cause(text: str) -> str | None:
    """The root-cause line of the first record in an error file's text (records opened by SEPARATOR)."""
    for record in text.split(SEPARATOR):
        lines = [line.strip() for line in record.splitlines() if line.strip()]
        if not lines:
            continue
        if any(line.startswith("Traceback (most recent call last)") for line in lines):
            return lines[-1][:300]
        return lines[0][:300]
    return None
