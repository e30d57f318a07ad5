"""Start a real `finch serve` on a free port for a test, and stop it afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from tests.conftest import REPO


def send_json(handler, status: int, body: dict) -> None:
    """Answer a stub server's request with a JSON body, as an OpenAI-compatible server does."""
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def finch_server(*args: str, env: dict[str, str] | None = None, startup_timeout: float = 180):
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "finch.cli.main", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"finch serve exited {process.returncode}: {process.stdout.read()}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("finch serve did not start in time")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
