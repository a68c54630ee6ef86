"""vLLM's error records, kept in a file as well as shown, so a failed engine is reported by its root cause.

vLLM's engine runs in other processes; when it fails, the exception the caller gets says only "see stack trace
(above)", and the root cause was logged by the engine process. vLLM configures its logging from a dictConfig
named by `VLLM_LOGGING_CONFIG_PATH`, which its processes inherit: rrhf passes vLLM's own default configuration,
with the console on stderr (stdout stays clean for pipes) and one more handler that appends every ERROR record
to a file, each record opened by a separator. `root_cause` reads the first record written after a mark.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

SEPARATOR = "\x1e"  # ASCII record separator: no log line holds it
_routed: dict[str, Path] = {}


def route_errors_to_file(level: str) -> Path:
    """Configure vLLM's logging (this process and the engine processes it starts) as described above; once per
    process. Returns the error file."""
    if "file" in _routed:
        return _routed["file"]
    from vllm import logger as vllm_logger

    folder = Path(tempfile.mkdtemp(prefix="rrhf-vllm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    errors = folder / "errors.log"
    config = copy.deepcopy(vllm_logger.DEFAULT_LOGGING_CONFIG)
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
    path = folder / "logging.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(path)
    _apply_here(vllm_logger)
    errors.touch()
    _routed["file"] = errors
    return errors


def _apply_here(vllm_logger: Any) -> None:
    # vLLM 0.3x applies its logging config when asked (its record factory adds fields the formatters use); the
    # engine processes read the same file from the environment when they start.
    configure = getattr(vllm_logger, "configure_logging", None)
    if callable(configure):
        from vllm.config.logging import LoggingConfig

        configure(LoggingConfig())


def mark() -> int:
    """Where the error file ends now: what `root_cause` reads from."""
    errors = _routed.get("file")
    return errors.stat().st_size if errors is not None and errors.exists() else 0


def root_cause(since: int) -> str | None:
    """The first error vLLM logged after `since`, as one line: the exception a traceback ends with, else the
    message's first line; None when nothing was logged."""
    errors = _routed.get("file")
    if errors is None or not errors.exists():
        return None
    with errors.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode("utf-8", errors="replace")
    return first_cause(text)


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
