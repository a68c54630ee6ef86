"""Where a run may write: one writer per output (an advisory lock held for the whole run), and an output path
that is not an input, not a device or a folder; checked before any work."""

from __future__ import annotations

import atexit
import fcntl
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from stages.contract.errors import UsageError

# The locks this process holds, by lock path. A run that failed in this process (tests, notebooks, a Python
# pipeline) may leave its lock held by an object not yet collected; one process runs one stage at a time, so
# its own lock is taken over rather than refused.
_held: dict[Path, IO[str]] = {}


def lock_path(output: Path) -> Path:
    """`OUTPUT.lock` beside the output (a file or a model folder, which is left holding only the model)."""
    return output.with_name(output.name + ".lock")


def lock_output(output: Path) -> None:
    """Hold the lock of `output` until `unlock_output` or the process ends (the system drops it then, so a killed
    run never blocks a rerun); UsageError naming the other process if another run holds it."""
    path = lock_path(output).absolute()
    _release(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(
                f"{output}: another rrhf run (process {holder}) is writing it; wait for it to end, or write elsewhere"
            ) from None
        # The file may have been removed by the run that held it between our open and our lock: lock the one
        # that is at the path now.
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[path] = handle


def lock_holder(lock: Path) -> str | None:
    """The process holding the lock file `lock` (as it wrote itself there), or None where no process holds it."""
    try:
        handle = lock.open("r", encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def unlock_output(output: Path) -> None:
    """Let go of the lock this process holds on `output`, removing its file (removed while still held, so no
    other run can lock a file that is about to disappear)."""
    _release(lock_path(output).absolute())


def unlock_all() -> None:
    """Let go of every lock this process holds: a run that failed is over, and its lock file should not stay."""
    for path in list(_held):
        _release(path)


def _release(path: Path) -> None:
    handle = _held.pop(path, None)
    if handle is not None:
        path.unlink(missing_ok=True)
        handle.close()


atexit.register(unlock_all)


TEMP_PART = ".XXXXXXXX.tmp"  # what an atomic write adds to its file's name (mkstemp's 8 random characters)


def planned_names(name: str, folder: bool = False, tag: str = "") -> list[str]:
    """Every name a run writing the artifact `name` may create beside it: the artifact, its sidecar, journal, lock
    and failure list, each written through a temp name; a rank's journal, lock and share under a launch's `tag`.

    >>> planned_names("o", folder=True)
    ['o', 'o.lock']
    >>> max(planned_names("o"), key=len), planned_names("o", tag="rank1-of-2")[-1]
    ('.o.failed.jsonl.XXXXXXXX.tmp', 'o.rank1-of-2.received')
    """
    if folder:
        return [name, name + ".lock"]
    written = [name, name + ".meta.json", name + ".failed.jsonl"]
    names = [*written, *(f".{w}{TEMP_PART}" for w in written), name + ".partial", name + ".lock"]
    if tag:
        names += [f"{name}.{tag}.{end}" for end in ("partial", "lock", "share", "received")]
    return names


def too_long(names: Iterable[str], name_max: int) -> str | None:
    """The longest of `names` where its UTF-8 bytes exceed `name_max` (the file system's NAME_MAX), else None.

    >>> too_long(["a" * 250, "a" * 250 + ".meta.json"], 255)[-10:]
    '.meta.json'
    >>> too_long(["é" * 127], 255) is None, too_long(["é" * 128], 255) is None  # bytes count: 254, then 256
    (True, False)
    """
    longest = max(names, key=lambda n: len(n.encode("utf-8", "surrogateescape")))
    return longest if len(longest.encode("utf-8", "surrogateescape")) > name_max else None


def check_names(output: Path, folder: bool = False, tag: str = "") -> None:
    """Refuse, before any work, an output whose folder cannot be written or created, or beside which a name the
    run creates (its temp name, sidecar, journal, lock) is longer than the file system allows."""
    parent = Path(os.path.abspath(output)).parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{output}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "cannot be written" if existing == parent else f"cannot be created ({existing} cannot be written)"
        raise UsageError(f"{output}: the folder {parent} {what}")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    longest = too_long(planned_names(output.name, folder, tag), name_max)
    if longest is not None:
        size = len(longest.encode("utf-8", "surrogateescape"))
        raise UsageError(f"{output}: the name is too long: the run writes {longest} beside it, {size} bytes where "
                         f"the file system allows {name_max}; choose a shorter name")


def check_output(output: Path, inputs: Iterable[str | Path] = (), folder: bool = False, tag: str = "") -> None:
    """Refuse, before any work, an output that would destroy an input or cannot hold an artifact: the same file
    as an input (through any link), a device, pipe or socket, a folder where a file goes (or a file where a
    folder goes, with `folder`), and a name or folder `check_names` refuses."""
    target = Path(os.path.realpath(output))
    if target.exists():
        mode = target.stat().st_mode
        if folder and not stat.S_ISDIR(mode):
            raise UsageError(f"{output}: exists and is not a folder")
        if not folder and stat.S_ISDIR(mode):
            raise UsageError(f"{output}: is a folder; name a file to write")
        if not folder and not stat.S_ISREG(mode):
            raise UsageError(f"{output}: is not a regular file (a device, pipe or socket); name a file to write")
    for source in inputs:
        if _same(target, Path(source)):
            raise UsageError(f"{output}: is also an input ({source}); write the output elsewhere")
    check_names(output, folder, tag)


def _same(target: Path, source: Path) -> bool:
    try:
        return source.exists() and target.exists() and os.path.samefile(target, source)
    except OSError:
        return False
