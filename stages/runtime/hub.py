"""Where a model name points, checked before anything is loaded: a local folder, the hub's cache, or the hub,
whose answer is awaited a few seconds rather than through a minute of retries."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from stages.contract.errors import UsageError

PROBE_SECONDS = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_MARKERS = ("config.json", "tokenizer_config.json", "adapter_config.json")  # what every loadable repository has


def offline(env: Mapping[str, str]) -> bool:
    """Whether the environment forbids the hub (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set true).

    >>> offline({"HF_HUB_OFFLINE": "1"}), offline({"TRANSFORMERS_OFFLINE": "yes"}), offline({"HF_HUB_OFFLINE": "0"})
    (True, True, False)
    """
    return any(env.get(key, "").strip().lower() in ("1", "true", "yes", "on")
               for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def probe_address(env: Mapping[str, str]) -> tuple[str, int]:
    """The host and port a download connects to first: the HTTPS proxy where one is set, else the hub's endpoint.

    >>> probe_address({}), probe_address({"HF_ENDPOINT": "http://mirror.local:8080/"})
    (('huggingface.co', 443), ('mirror.local', 8080))
    >>> probe_address({"https_proxy": "http://proxy:3128"})
    ('proxy', 3128)
    """
    proxy = next((env[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if env.get(k)), "")
    url = urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else urlsplit(
        env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def answers(host: str, port: int, seconds: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to `host:port` opens within `seconds`, name lookup included (in a thread, as the
    system's lookup has no timeout of its own)."""
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            opened.append(True)
        except OSError:
            pass

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(seconds)
    return bool(opened)


def cached(name: str) -> bool:
    """Whether the hub's cache holds repository `name` (any of the files a loadable one has)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(name, marker), str) for marker in _MARKERS)
    except ValueError:  # not a repository name at all (HFValidationError)
        return False


def cache_only(name: str, flag: str = "--model", env: Mapping[str, str] | None = None) -> bool:
    """Whether `name` must load from the hub's cache without asking the hub (the hub does not answer, the cache
    has it); False for a local path or where the hub answers. UsageError, in one line and at once, where it can
    load from nowhere: offline, or the hub silent, and not in the cache."""
    env = os.environ if env is None else env
    if Path(name).expanduser().exists():
        return False
    if offline(env):
        if cached(name):
            return True
        raise UsageError(f"{flag} {name}: no such folder, and not in the hub's cache (HF_HUB_OFFLINE is set, so "
                         "nothing is downloaded)")
    host, port = probe_address(env)
    if answers(host, port):
        return False
    if cached(name):
        return True
    raise UsageError(f"{flag} {name}: no such folder, not in the hub's cache, and the hub ({host}:{port}) did not "
                     f"answer within {PROBE_SECONDS:g} s; check the name, or the network")
