"""Bad input and load against a running server: OpenAI-style 4xx, never a 5xx, and it keeps answering."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import finch_server

pytestmark = pytest.mark.slow

GOOD_CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}


def malformed_requests(rng: random.Random) -> list[tuple[str, str, bytes | None, dict]]:
    """(method, path, raw body, headers): broken JSON, wrong types, missing fields, bad routes, bad values."""
    json_headers = {"Content-Type": "application/json"}
    bodies = [
        b"{",
        b"not json",
        b"",
        b"[]",
        b"null",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        json.dumps({}).encode(),
        json.dumps({"messages": []}).encode(),
        json.dumps({"messages": "hello"}).encode(),
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(),
        json.dumps({"messages": [{"role": "user"}]}).encode(),
        json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
        json.dumps({**GOOD_CHAT, "temperature": "hot"}).encode(),
        json.dumps({**GOOD_CHAT, "temperature": -1}).encode(),
        json.dumps({**GOOD_CHAT, "max_tokens": 0}).encode(),
        json.dumps({**GOOD_CHAT, "n": 1000}).encode(),
        json.dumps({**GOOD_CHAT, "top_p": 0}).encode(),
        json.dumps({**GOOD_CHAT, "stop": 7}).encode(),
        json.dumps({"prompt": 12}).encode(),
        json.dumps({"prompt": []}).encode(),
        json.dumps({"prompt": "x", "max_tokens": -5}).encode(),
        json.dumps({"prompt": ["a", "b"], "stream": True}).encode(),
        json.dumps({"messages": [{"role": "assistant", "content": "x"}], "max_tokens": 1}).encode(),  # bad order
    ]
    requests = []
    for _ in range(200):
        kind = rng.random()
        if kind < 0.8:
            path = rng.choice(["/v1/chat/completions", "/v1/completions"])
            requests.append(("POST", path, rng.choice(bodies), json_headers))
        elif kind < 0.9:
            requests.append(("GET", rng.choice(["/v1/chat/completions", "/v1/nothing", "/v2/models"]), None, {}))
        else:
            requests.append(("POST", "/v1/chat/completions", b"x=1", {"Content-Type": "text/plain"}))
    return requests


def test_200_malformed_requests_get_4xx_and_the_server_still_answers(tmp_path):
    env = {"FINCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    with finch_server("--model", "gemma-3-270m", "--ctx", "512", env=env) as base:
        statuses = []

        def send(request):
            method, path, body, headers = request
            with httpx.Client(base_url=base, timeout=60) as client:
                response = client.request(method, path, content=body, headers=headers)
            if response.status_code >= 400 and response.status_code != 404:
                error = response.json()["error"]
                assert error["message"] and error["type"]
            return response.status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, malformed_requests(random.Random(0))))
        assert all(s < 500 for s in statuses), sorted(set(statuses))
        assert sum(400 <= s < 500 for s in statuses) >= 150
        answer = httpx.post(f"{base}/v1/chat/completions", json=GOOD_CHAT, timeout=60)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["role"] == "assistant"


def test_full_queue_answers_429(tmp_path):
    env = {"FINCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    args = ("--model", "gemma-3-270m", "--ctx", "512", "--parallel", "2", "--max-queue", "1")
    with finch_server(*args, env=env) as base:
        slow = {"prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}

        def send(_):
            return httpx.post(f"{base}/v1/completions", json=slow, timeout=120).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(send, range(6)))
        # 2 slots and 1 queued: at least 3 answered, the rest refused, nothing else
        assert statuses.count(200) >= 3 and 429 in statuses and all(s in (200, 429) for s in statuses)
