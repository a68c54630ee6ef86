"""Real servers for tests, on 127.0.0.1 only: `transformers serve` with a local model folder, and a proxy in
front of it that injects the faults real APIs show."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def transformers_serve(model_dir: Path, log_path: Path, startup_s: float = 120) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on loopback; yields its base URL (no /v1), stops it afterwards."""
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        raise RuntimeError("transformers[serving] is a dev dependency: `transformers` is not installed")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class _LoopbackServer:
    """A threading HTTP server on 127.0.0.1 answering with the handler class `_handler()` returns."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FaultProxy(_LoopbackServer):
    """Forwards POSTs to the server, except that `plan(number, body)` may answer instead: "500", "503", "429"
    (with Retry-After: 1), "stall" (answer nothing for `stall` seconds), "reset" (close with RST),
    "drop" (forward, then reset instead of relaying: the server did the work, the client never sees it)."""

    def __init__(self, upstream: str, plan, stall: float = 4.0) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.plan, self.stall = plan, stall
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # one per request: time, path, body, action, authorization
        self.delivered = 0  # choices that reached the client
        self.finish_reasons: list[str | None] = []  # theirs, as the server gave them
        self.in_flight = self.max_in_flight = 0  # requests the proxy holds at once, and the most it held
        super().__init__()
        self.url += "/v1"

    def _handler(self):
        proxy = self

        class Handler(_QuietHandler):
            def do_POST(self):
                with proxy.lock:
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    self._handle()
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def _handle(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with proxy.lock:
                    number = len(proxy.requests)
                    action = proxy.plan(number, body)
                    proxy.requests.append(
                        {
                            "time": time.monotonic(),
                            "path": self.path,
                            "body": body,
                            "action": action,
                            "authorization": self.headers.get("Authorization"),
                        }
                    )
                if action in ("500", "503"):
                    return self._reply(int(action), {"error": {"message": "injected failure"}})
                if action == "429":
                    return self._reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
                if action == "echo-key":  # a careless server that quotes the credentials back
                    message = f"bad request from {self.headers.get('Authorization')}"
                    return self._reply(400, {"error": {"message": message}})
                if action == "stall":
                    time.sleep(proxy.stall)
                    return self._reset()
                if action == "reset":
                    return self._reset()
                status, payload = self._forward(body)
                if action == "drop":
                    return self._reset()
                if status == 200:
                    with proxy.lock:
                        proxy.delivered += len(payload["choices"])
                        proxy.finish_reasons += [choice.get("finish_reason") for choice in payload["choices"]]
                return self._reply(status, payload)

            def _forward(self, body):
                connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
                connection.request("POST", self.path, json.dumps(body), {"Content-Type": "application/json"})
                answer = connection.getresponse()
                payload = json.loads(answer.read())
                connection.close()
                return answer.status, payload

            def _reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def _reset(self):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def finish(self):
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass

        return Handler


class PositionJudge(_LoopbackServer):
    """A chat-completions server that grades a listwise prompt by position: answer j (1-based, as shown) gets
    score j, so scores mapped back to the responses reveal the order they were shown in. A model named
    `reasoning` refuses `max_tokens` and a temperature, as OpenAI's reasoning models do."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        super().__init__()

    def _handler(self):
        judge = self

        class Handler(_QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append(body)
                refused = _refused(body)
                if refused:
                    return self._reply(400, {"error": {"message": refused, "type": "invalid_request_error"}})
                k = body["messages"][0]["content"].count("[Answer ")
                answer = json.dumps({"scores": list(range(1, k + 1))})
                self._reply(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                })

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _refused(body: dict) -> str | None:
    # OpenAI's wording for these refusals.
    if body["model"] != "reasoning":
        return None
    if "max_tokens" in body:
        return ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.")
    if "temperature" in body:
        return ("Unsupported value: 'temperature' does not support 0.0 with this model. "
                "Only the default (1) value is supported.")
    return None
