"""The official openai client, unchanged, against `finch serve --model gemma-3-270m` (real llama.cpp, real HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import finch_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"FINCH_HOME": str(tmp_path_factory.mktemp("home")), "HF_HUB_OFFLINE": "1"}
    with finch_server("--model", "gemma-3-270m", "--api-key", "sekret", "--ctx", "1024", env=env) as base:
        yield base


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="sekret", max_retries=0)


def test_models_list(client):
    assert [m.id for m in client.models.list().data] == ["gemma-3-270m-q4_k_m"]


def test_chat_completion_and_stream_agree_greedily(client):
    messages = [{"role": "user", "content": "Name a colour."}]
    plain = client.chat.completions.create(model="x", messages=messages, max_tokens=12, temperature=0, seed=1)
    choice = plain.choices[0]
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    assert plain.usage.completion_tokens >= 1 and plain.usage.prompt_tokens > 5
    stream = client.chat.completions.create(
        model="x", messages=messages, max_tokens=12, temperature=0, seed=1, stream=True
    )
    pieces, reasons = [], []
    for event in stream:
        pieces.append(event.choices[0].delta.content or "")
        reasons.append(event.choices[0].finish_reason)
    assert "".join(pieces) == choice.message.content
    assert reasons[-1] == choice.finish_reason and all(r is None for r in reasons[:-1])


def test_completions(client):
    result = client.completions.create(model="x", prompt="The capital of France is", max_tokens=5, temperature=0)
    assert result.choices[0].finish_reason in ("stop", "length")
    assert result.usage.completion_tokens <= 5


def test_api_key_is_required(server):
    response = httpx.get(f"{server}/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{server}/health").status_code == 200


def test_prompt_longer_than_context_is_a_400(client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError, match="context holds 1024"):
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "word " * 3000}], max_tokens=4)
    with pytest.raises(BadRequestError, match="context holds 1024"):
        client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "word " * 3000}], max_tokens=4, stream=True
        )


def test_a_client_that_disconnects_mid_stream_stops_its_generation(server):
    import time

    headers = {"Authorization": "Bearer sekret"}
    body = {
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 900,
        "stream": True,
        "temperature": 1.0,
        "seed": 3,
    }
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        assert httpx.get(f"{server}/health").json()["generating"] is True
    # 900 tokens take minutes on 2 cores; a stopped generation frees the model within a few token steps.
    deadline = time.monotonic() + 30
    while httpx.get(f"{server}/health").json()["generating"]:
        assert time.monotonic() < deadline, "generation kept running after the client left"
        time.sleep(0.2)


def test_greedy_answers_under_load_are_the_answers_alone(server):
    """Eight different chats with different lengths, concurrently, get exactly the answers each got alone:
    --batch-invariant (the default) keeps llama.cpp's several-row kernels, which round differently, out of it.
    With --no-batch-invariant this test fails on this model (checked by hand)."""
    topics = [
        "a lighthouse",
        "a robot gardener",
        "the last train",
        "a baker",
        "a lost map",
        "winter",
        "a dragon",
        "a clock",
    ]

    def ask(i: int) -> str:
        body = {
            "messages": [{"role": "user", "content": f"Write a short story about {topics[i]}."}],
            "max_tokens": 16 + 5 * i,
            "temperature": 0,
        }
        response = httpx.post(
            f"{server}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sekret"}, timeout=120
        )
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    alone = [ask(i) for i in range(len(topics))]
    with ThreadPoolExecutor(len(topics)) as pool:
        together = list(pool.map(ask, range(len(topics))))
    assert together == alone
