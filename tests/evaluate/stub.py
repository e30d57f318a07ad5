"""A scripted OpenAI-compatible server over real HTTP: the model under test, or a judge, answering by a function of
the request, so tests are deterministic whatever order the requests arrive in."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import send_json


class StubServer(ThreadingHTTPServer):
    def __init__(self, reply: Callable[[list[dict]], tuple[str, str]], name: str):
        self.reply, self.name, self.requests, self.lock = reply, name, [], threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def do_GET(self):  # noqa: N802
        send_json(self, 200, {"object": "list", "data": [{"id": self.server.name, "object": "model"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            self.server.requests.append(body)
        text, finish = self.server.reply(body["messages"])
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            for i in range(body.get("n", 1))
        ]
        send_json(self, 200, {"choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 10}})

    def log_message(self, *args):
        pass


@contextmanager
def stub_server(reply: Callable[[list[dict]], tuple[str, str] | str], name: str = "stub"):
    """`reply(messages)` gives the answer text, or (text, finish_reason)."""

    def full(messages):
        answer = reply(messages)
        return answer if isinstance(answer, tuple) else (answer, "stop")

    server = StubServer(full, name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
