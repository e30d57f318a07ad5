"""Any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, OpenAI, finch serve): concurrent, with retries."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from finch.errors import FinchError
from finch.inference.base import Abilities, Backend, StreamChunk
from finch.inference.params import Completion, GenerationParams, TokenLogprob

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class HttpBackend(Backend):
    name = "http"
    abilities = Abilities(concurrent_requests=True)

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        workers: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        context_length: int = 4096,
    ):
        import httpx

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        key = api_key or os.environ.get("FINCH_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        )
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.retries = retries
        self.context_length = context_length
        self.model_name = model or self._first_model()

    def _request(self, path: str, body: dict) -> dict:
        """POST with retries and exponential backoff (with jitter) on 429/5xx and timeouts."""
        import httpx

        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            try:
                response = self.client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if response.status_code < 400:
                    return response.json()
                problem = f"HTTP {response.status_code}: {_error_message(response)}"
                if response.status_code not in RETRY_STATUS:
                    raise FinchError(f"{url}: {problem}")
            if attempt < self.retries:
                time.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))
        raise FinchError(f"{url}: gave up after {self.retries + 1} attempts; last: {problem}")

    def _first_model(self) -> str:
        import httpx

        try:
            response = self.client.get(f"{self.base_url}/models")
            response.raise_for_status()
            return response.json()["data"][0]["id"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
            raise FinchError(
                f"{self.base_url}/models: cannot list the server's models ({e}); pass the model name."
            ) from None

    def _body(self, params: GenerationParams) -> dict:
        body = {
            "model": self.model_name,
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def chat(self, conversations, params: GenerationParams) -> list[list[Completion]]:
        def one(messages):
            body = {**self._body(params), "messages": messages}
            if params.logprobs is not None:
                body.update(logprobs=True, top_logprobs=params.logprobs)
            result = self._request("/chat/completions", body)
            return [_completion(c["message"]["content"] or "", c, result, chat=True) for c in result["choices"]]

        return list(self.pool.map(one, conversations))

    def complete(self, prompts: list[str], params: GenerationParams, echo: bool = False) -> list[list[Completion]]:
        def one(prompt):
            body = {**self._body(params), "prompt": prompt, "echo": echo}
            if params.logprobs is not None:
                body["logprobs"] = params.logprobs
            result = self._request("/completions", body)
            return [_completion(c["text"], c, result, chat=False) for c in result["choices"]]

        return list(self.pool.map(one, prompts))

    def _stream(self, path: str, body: dict, chat: bool) -> Iterator[StreamChunk]:
        import httpx

        url = f"{self.base_url}{path}"
        try:
            with self.client.stream("POST", url, json={**body, "stream": True}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise FinchError(f"{url}: HTTP {response.status_code}: {_error_message(response)}")
                for line in response.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    choice = json.loads(line[5:])["choices"][0]
                    text = (choice.get("delta", {}).get("content") or "") if chat else choice.get("text", "")
                    yield StreamChunk(text, choice.get("finish_reason"))
        except httpx.HTTPError as e:
            raise FinchError(f"{url}: {type(e).__name__}: {e}") from None

    def stream_chat(self, messages, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream("/chat/completions", {**self._body(params), "n": 1, "messages": messages}, chat=True)

    def stream_complete(self, prompt: str, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream("/completions", {**self._body(params), "n": 1, "prompt": prompt}, chat=False)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _error_message(response) -> str:
    try:
        error = response.json().get("error")
        return error.get("message", str(error)) if isinstance(error, dict) else str(error or response.text[:200])
    except ValueError:
        return response.text[:200] or response.reason_phrase


def _completion(text: str, choice: dict, result: dict, chat: bool) -> Completion:
    usage = result.get("usage") or {}
    logprobs = None
    raw = choice.get("logprobs")
    if raw and chat and raw.get("content"):
        logprobs = [
            TokenLogprob(t["token"], t["logprob"], {a["token"]: a["logprob"] for a in t.get("top_logprobs", [])})
            for t in raw["content"]
        ]
    elif raw and not chat and raw.get("tokens"):
        tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
        logprobs = [
            TokenLogprob(t, lp, dict(top or {})) for t, lp, top in zip(raw["tokens"], raw["token_logprobs"], tops)
        ]
    return Completion(
        text=text,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        logprobs=logprobs,
    )
