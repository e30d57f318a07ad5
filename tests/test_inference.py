"""The generation layer on tiny real models: the same prompt ids in every backend, sampling controls, streaming,
adapters applied on the fly, and the HTTP backend's retries."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finch.errors import FinchError, UsageError
from finch.inference import GenerationParams, load_backend
from finch.inference.base import chat_prompt_ids
from finch.inference.http_backend import HttpBackend
from tests.servers import send_json

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the weather like?"},
    {"role": "assistant", "content": "Sunny and warm."},
    {"role": "user", "content": "And tomorrow?"},
]
GREEDY = GenerationParams(temperature=0, max_tokens=12)


def hf_chat_ids(hf_dir, messages):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module", params=["gemma3", "llama"])
def family(request, tiny_gemma3_dir, tiny_llama_dir, tiny_gemma3_gguf, tiny_llama_gguf):
    if request.param == "gemma3":
        return tiny_gemma3_dir, tiny_gemma3_gguf
    return tiny_llama_dir, tiny_llama_gguf


@pytest.fixture(scope="module")
def backends(family, tmp_path_factory):
    hf_dir, gguf = family
    models_dir = tmp_path_factory.mktemp("models")
    llama = load_backend(str(gguf), models_dir, ctx=256)
    hf = load_backend(str(hf_dir), models_dir, dtype="float32")
    yield hf_dir, llama, hf
    llama.close()


def test_every_backend_feeds_the_same_ids_as_apply_chat_template(backends):
    hf_dir, llama, hf = backends
    expected = hf_chat_ids(hf_dir, MESSAGES)
    assert (llama.name, hf.name) == ("llama-cpp", "transformers")
    for backend in (llama, hf):
        assert chat_prompt_ids(backend.prompt_format, backend.tokenize, MESSAGES) == expected, backend.name
        [[completion]] = backend.chat([MESSAGES], GREEDY)
        assert completion.prompt_tokens == len(expected), backend.name


PROMISES = {  # ability -> what a backend that declares it must have
    "renders_prompts": ("prompt_format", "tokenize"),
    "batch_decoding": ("chat_stream",),
    "choice_probs": ("next_token_probs",),
}


def test_backends_declare_what_they_can_do_and_do_it(backends):
    """Callers branch on `abilities`, never on hasattr or a backend's name: each declaration matches the methods
    there, and the promised ones answer."""
    from collections import deque

    _, llama, hf = backends
    http = HttpBackend("http://127.0.0.1:9/v1", model="any", retries=0)
    for backend in (llama, hf, http):
        for ability, methods in PROMISES.items():
            assert all(hasattr(backend, m) for m in methods) == getattr(backend.abilities, ability), (
                backend.name,
                ability,
            )
    assert (llama.abilities.concurrent_requests, hf.abilities.concurrent_requests) == (False, False)
    assert http.abilities.concurrent_requests
    with http:  # backends are context managers that close themselves
        pass
    with pytest.raises(RuntimeError):
        http.pool.submit(print)
    probs = llama.next_token_probs(MESSAGES, "Answer: ", ["A", "B"])
    assert set(probs) == {"A", "B"} and 0 <= sum(probs.values()) <= 1.0001
    streamed = dict(llama.chat_stream(deque([(k, MESSAGES, GREEDY) for k in ("a", "b")])))
    assert set(streamed) == {"a", "b"} and streamed["a"].text == llama.chat([MESSAGES], GREEDY)[0][0].text


def test_greedy_is_repeatable_and_stream_matches(backends):
    _, llama, hf = backends
    for backend in (llama, hf):
        [[first]] = backend.chat([MESSAGES], GREEDY)
        [[again]] = backend.chat([MESSAGES], GREEDY)
        assert first.text == again.text and first.completion_tokens >= 1
        streamed = list(backend.stream_chat(MESSAGES, GREEDY))
        assert "".join(c.text for c in streamed) == first.text, backend.name
        assert streamed[-1].finish_reason == first.finish_reason
        assert all(c.finish_reason is None for c in streamed[:-1])


def test_batches_n_and_max_tokens(backends):
    _, llama, hf = backends
    params = GenerationParams(n=3, temperature=1.5, max_tokens=6, seed=7)
    for backend in (llama, hf):
        results = backend.chat([MESSAGES, MESSAGES[:2]], params)
        assert [len(r) for r in results] == [3, 3]
        for completion in (c for r in results for c in r):
            assert completion.completion_tokens <= 6
            assert completion.finish_reason in ("stop", "length")
        texts = {c.text for c in results[0]}
        assert len(texts) > 1, f"{backend.name}: 3 samples at temperature 1.5 should differ"


def test_stop_strings_cut_the_text(backends):
    _, llama, hf = backends
    for backend in (llama, hf):
        [[free]] = backend.complete(["the weather is"], GenerationParams(temperature=0, max_tokens=16))
        if len(free.text) < 3:
            continue
        stop = free.text[2:4]
        [[cut]] = backend.complete(["the weather is"], GenerationParams(temperature=0, max_tokens=16, stop=[stop]))
        assert cut.text == free.text[: free.text.find(stop)] and cut.finish_reason == "stop", backend.name


def test_prompt_longer_than_context_is_a_usage_error(backends):
    _, llama, _ = backends
    with pytest.raises(UsageError, match="context holds 256"):
        llama.complete(["weather " * 400], GREEDY)


def test_logprobs(backends, family, tmp_path):
    _, llama, hf = backends
    with pytest.raises(UsageError, match="keep all logits"):
        llama.complete(["the weather"], GenerationParams(max_tokens=2, logprobs=1))
    scoring = load_backend(str(family[1]), tmp_path, ctx=128, logits_all=True)
    for backend in (scoring, hf):
        [[completion]] = backend.complete(["the weather"], GenerationParams(temperature=0, max_tokens=4, logprobs=2))
        assert completion.logprobs and len(completion.logprobs) >= 1
        first = completion.logprobs[0]
        assert first.logprob <= 0 and len(first.top) == 2 and max(first.top.values()) >= first.logprob - 1e-3


def test_adapter_applied_on_the_fly_changes_the_output(tiny_llama_dir, tmp_path):
    from tests.tiny_models import write_tiny_lora

    run = write_tiny_lora(tiny_llama_dir, tmp_path / "run", targets=("q_proj", "v_proj", "down_proj"))

    models_dir = tmp_path / "models"
    base = load_backend(str(tiny_llama_dir), models_dir, dtype="float32")
    with_flag = load_backend(str(tiny_llama_dir), models_dir, adapter=run, dtype="float32")
    by_ref = load_backend(str(run), models_dir, dtype="float32")
    params = GenerationParams(temperature=0, max_tokens=10, logprobs=0)
    [[plain]] = base.complete(["the weather"], params)
    [[tuned]] = with_flag.complete(["the weather"], params)
    [[tuned_again]] = by_ref.complete(["the weather"], params)
    assert [t.logprob for t in tuned.logprobs] != pytest.approx([t.logprob for t in plain.logprobs])
    assert tuned.text == tuned_again.text
    with pytest.raises(UsageError, match="cannot apply a PEFT adapter"):
        load_backend(str(run), models_dir, backend="llama-cpp")


def test_backend_choice_errors(tiny_llama_dir, tmp_path):
    with pytest.raises(UsageError, match="needs a GGUF"):
        load_backend(str(tiny_llama_dir), tmp_path, backend="llama-cpp")
    with pytest.raises(UsageError, match="unknown; choose one of"):
        load_backend(str(tiny_llama_dir), tmp_path, backend="onnx")
    with pytest.raises(UsageError, match="needs a URL"):
        load_backend("gemma-3-270m", tmp_path, backend="http")


class ScriptedServer(ThreadingHTTPServer):
    """A stub OpenAI endpoint over real HTTP: answers with a scripted list of (status, body)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        super().__init__(("127.0.0.1", 0), ScriptedHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ScriptedHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.server.requests.append((self.path, json.loads(self.rfile.read(length)), self.headers.get("Authorization")))
        status, body = self.server.script.pop(0)
        send_json(self, status, body)

    def log_message(self, *args):
        pass


def chat_answer(text):
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }


@pytest.fixture
def scripted():
    servers = []

    def start(script):
        server = ScriptedServer(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def test_http_backend_retries_429_and_5xx_then_succeeds(scripted):
    busy = {"error": {"message": "slow down"}}
    server = scripted([(429, busy), (503, busy), (200, chat_answer("hello"))])
    backend = HttpBackend(server.url, model="teacher", api_key="k1", retries=3)
    [[completion]] = backend.chat([MESSAGES], GREEDY)
    assert (completion.text, completion.prompt_tokens) == ("hello", 3)
    assert len(server.requests) == 3
    path, body, auth = server.requests[-1]
    assert (path, body["model"], body["temperature"], auth) == ("/v1/chat/completions", "teacher", 0.0, "Bearer k1")


def test_http_backend_gives_up_and_does_not_retry_400(scripted):
    server = scripted([(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(FinchError, match="gave up after 3 attempts; last: HTTP 500: boom"):
        HttpBackend(server.url, model="m", retries=2).chat([MESSAGES], GREEDY)
    server = scripted([(400, {"error": {"message": "bad field"}}), (200, chat_answer("never"))])
    with pytest.raises(FinchError, match="HTTP 400: bad field"):
        HttpBackend(server.url, model="m", retries=2).chat([MESSAGES], GREEDY)
    assert len(server.requests) == 1


def test_http_backend_runs_requests_concurrently(scripted):
    server = scripted([(200, chat_answer(str(i))) for i in range(6)])
    backend = HttpBackend(server.url, model="m", workers=4)
    results = backend.chat([MESSAGES] * 6, GREEDY)
    assert sorted(r[0].text for r in results) == [str(i) for i in range(6)]
