"""The FastAPI app: OpenAI-style routes, errors and auth, /metrics. On llama.cpp, requests are decoded together
(finch.serve.batching: --parallel slots, a bounded queue); logprobs, echo and other backends go one at a time."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from finch.errors import FinchError, UsageError
from finch.inference.base import Backend, StreamChunk, chat_prompt_ids
from finch.inference.params import Completion
from finch.serve.batching import Busy, ContinuousBatcher
from finch.serve.generation import BatchedGeneration
from finch.serve.metrics import CONTENT_TYPE, ServeMetrics
from finch.serve.request_log import RequestLog
from finch.serve.schemas import ChatCompletionRequest, CompletionRequest

ROUTES = {"/v1/chat/completions", "/v1/completions", "/v1/models"}


def text_offsets(tokens: list[str]) -> list[int]:
    """Where each token starts in the choice's text (OpenAI's `text_offset`): the text is the tokens in order."""
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return offsets


def error_response(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None):
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": type_, "param": None, "code": code}}
    )


class OneAtATime:
    """Runs one generation at a time on a worker thread (backends are not thread-safe); at most max_queue wait."""

    def __init__(self, backend: Backend, max_queue: int):
        self.backend = backend
        self.max_queue = max_queue
        self.waiting = 0
        self.lock = asyncio.Lock()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finch-generate")

    async def acquire(self) -> None:
        if self.waiting >= self.max_queue:
            raise Busy
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1

    async def run(self, fn, *args):
        await self.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)
        finally:
            self.lock.release()

    async def open_stream(self, make) -> Stream:
        """Start a sync chunk stream on the worker; its first chunk is read here, so a bad prompt fails as a 400."""
        await self.acquire()
        stream = Stream(self)
        try:
            stream.chunks = await asyncio.get_running_loop().run_in_executor(self.worker, make)
            stream.first = await stream.next()
        except BaseException:
            stream.stop()
            raise
        return stream


class Stream:
    """One streaming generation holding the model; stop() is synchronous so it also works in a cancelled task."""

    def __init__(self, turns: OneAtATime):
        self.turns = turns
        self.chunks: Iterator[StreamChunk] | None = None
        self.first: StreamChunk | None = None
        self.stopped = False

    async def next(self) -> StreamChunk | None:
        return await asyncio.get_running_loop().run_in_executor(self.turns.worker, next, self.chunks, None)

    def stop(self) -> None:
        """Close the chunk stream after any step in flight (same one-thread queue), stopping the generation."""
        if self.stopped:
            return
        self.stopped = True
        if self.chunks is not None and hasattr(self.chunks, "close"):
            self.turns.worker.submit(self.chunks.close)
        self.turns.lock.release()

    async def events(self, render, request: Request) -> AsyncIterator[str]:
        """SSE lines: render(chunk) for each chunk, then [DONE]; a client that goes away stops the generation."""
        try:
            chunk = self.first
            while chunk is not None:
                yield render(chunk)
                if await request.is_disconnected():
                    return
                chunk = await self.next()
            yield "data: [DONE]\n\n"
        finally:
            self.stop()


def _usage(completions: list[Completion]) -> dict:
    prompt = completions[0].prompt_tokens if completions else 0
    produced = sum(c.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": produced, "total_tokens": prompt + produced}


def guard(app: FastAPI, api_key: str | None, metrics: ServeMetrics) -> None:
    """The API key check on /v1, every error as an OpenAI-style JSON error with the right status, and every /v1
    answer counted by status."""

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1"):
            header = request.headers.get("authorization", "")
            if not secrets.compare_digest(header.encode(), f"Bearer {api_key}".encode()):
                return error_response(
                    401, "Invalid or missing API key: send 'Authorization: Bearer KEY'.", code="invalid_api_key"
                )
        return await call_next(request)

    @app.middleware("http")  # added last, so it runs first: it sees the 401s too
    async def count(request: Request, call_next):
        route = request.url.path
        if not route.startswith("/v1"):
            return await call_next(request)
        route = route if route in ROUTES else "other"  # a label per unknown path would grow without bound
        try:
            response = await call_next(request)
        except Exception:
            metrics.requests.labels(route, "500").inc()
            raise
        metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), code=None)

    @app.exception_handler(UsageError)
    async def bad_request(request: Request, exc: UsageError):
        return error_response(400, str(exc))

    @app.exception_handler(FinchError)
    async def failed(request: Request, exc: FinchError):
        return error_response(500, str(exc), type_="server_error")

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return error_response(
            429, "The server is busy: too many queued requests; retry shortly.", type_="rate_limit_error"
        )


@dataclass
class Served:
    """What the generation routes work with: the backend, its runners (the batcher when it has one, else one at a
    time) and the model id."""

    backend: Backend
    model_id: str
    turns: OneAtATime
    batched: BatchedGeneration | None

    def fitted(self, ids: list[int], params):
        """params with max_tokens cut to what the context holds after the prompt (a prompt too long is a 400)."""
        self.backend._check_fits(ids)
        room = self.backend.context_length - len(ids)
        return params.model_copy(update={"max_tokens": min(params.max_tokens, room)})

    async def chat(self, body: ChatCompletionRequest, request: Request):
        params = body.params(
            body.max_completion_tokens or body.max_tokens or 512, body.top_logprobs if body.logprobs else None
        )
        messages = [m.model_dump() for m in body.messages]
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": self.model_id}
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}

        def render(chunk: StreamChunk) -> str:
            delta = {"content": chunk.text} if chunk.text else {}
            return _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": chunk.finish_reason}]})

        async def events(chunks):
            yield _sse({**head, "choices": [role]})
            async for chunk in chunks:
                yield render(chunk)
            yield "data: [DONE]\n\n"

        if self.batched and params.logprobs is None:
            ids = chat_prompt_ids(self.backend.prompt_format, self.backend.tokenize, messages)
            params = self.fitted(ids, params)
            record = {"id": rid, "route": "/v1/chat/completions", "messages": messages, **_logged(params)}
            if body.stream:
                chunks = self.batched.stream(ids, params, request, record)
                return StreamingResponse(events(chunks), media_type="text/event-stream")
            completions = await self.batched.complete(ids, params, record)
        else:
            if body.stream:
                stream = await self.turns.open_stream(lambda: self.backend.stream_chat(messages, params))

                async def one_at_a_time_events():
                    yield _sse({**head, "choices": [role]})
                    async for line in stream.events(render, request):
                        yield line

                return StreamingResponse(one_at_a_time_events(), media_type="text/event-stream")
            [completions] = await self.turns.run(self.backend.chat, [messages], params)
        choices = [chat_choice(i, c) for i, c in enumerate(completions)]
        return {
            "id": rid,
            "object": "chat.completion",
            "created": now,
            "model": self.model_id,
            "choices": choices,
            "usage": _usage(completions),
        }

    async def complete(self, body: CompletionRequest, request: Request):
        params = body.params(body.max_tokens, body.logprobs)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise UsageError("prompt: must not be empty.")
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream and len(prompts) != 1:
            raise UsageError("prompt: streaming takes a single prompt.")

        def render(chunk: StreamChunk) -> str:
            choice = {"index": 0, "text": chunk.text, "logprobs": None, "finish_reason": chunk.finish_reason}
            return _sse(
                {"id": rid, "object": "text_completion", "created": now, "model": self.model_id, "choices": [choice]}
            )

        if self.batched and params.logprobs is None and not body.echo:
            ids = [self.backend.tokenize(p, add_bos=True) for p in prompts]
            fits = [self.fitted(i, params) for i in ids]
            records = [{"id": rid, "route": "/v1/completions", "prompt": p, **_logged(params)} for p in prompts]
            if body.stream:
                chunks = self.batched.stream(ids[0], fits[0], request, records[0])

                async def events():
                    async for chunk in chunks:
                        yield render(chunk)
                    yield "data: [DONE]\n\n"

                return StreamingResponse(events(), media_type="text/event-stream")
            results = await asyncio.gather(*(self.batched.complete(i, f, r) for i, f, r in zip(ids, fits, records)))
        else:
            if body.stream:
                stream = await self.turns.open_stream(lambda: self.backend.stream_complete(prompts[0], params))
                return StreamingResponse(stream.events(render, request), media_type="text/event-stream")
            results = await self.turns.run(self.backend.complete, prompts, params, body.echo)
        flat = [c for completions_for_prompt in results for c in completions_for_prompt]
        choices = [completion_choice(i, c) for i, c in enumerate(flat)]
        usage = {
            "prompt_tokens": sum(r[0].prompt_tokens for r in results if r),
            "completion_tokens": sum(c.completion_tokens for c in flat),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": rid,
            "object": "text_completion",
            "created": now,
            "model": self.model_id,
            "choices": choices,
            "usage": usage,
        }


def create_app(
    backend: Backend,
    api_key: str | None = None,
    max_queue: int = 32,
    model_id: str | None = None,
    parallel: int = 8,
    request_log: Path | None = None,
) -> FastAPI:
    """The OpenAI-compatible app for one served model: its routes, over a Served (the generation routes' work), the
    metrics and the request log."""
    app = FastAPI(title="finch", version="1", docs_url=None, redoc_url=None)
    model_id = model_id or backend.model_name
    turns = OneAtATime(backend, max_queue)
    batcher = None
    if backend.abilities.batch_decoding:
        batcher = ContinuousBatcher(backend.llm, parallel, backend.context_length, max_queue, backend.n_threads)
    metrics = ServeMetrics(
        queued=lambda: turns.waiting + (batcher.queued if batcher else 0),
        active=lambda: int(turns.lock.locked()) + (batcher.active if batcher else 0),
    )
    log = RequestLog(request_log) if request_log else None
    batched = BatchedGeneration(batcher, metrics, log) if batcher else None
    created = int(time.time())
    app.router.on_shutdown.append(lambda: _close(batcher, log))

    guard(app, api_key, metrics)

    served = Served(backend, model_id, turns, batched)

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "model": model_id,
            "backend": backend.name,
            "generating": turns.lock.locked() or bool(batcher and batcher.active),
            "queued": turns.waiting + (batcher.queued if batcher else 0),
            "slots": batcher.slots if batcher else 1,
        }

    @app.get("/metrics")
    async def metrics_text():
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": model_id, "object": "model", "created": created, "owned_by": "finch"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await served.chat(body, request)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await served.complete(body, request)

    return app


def _logged(params) -> dict:
    """What the request log keeps of a request's settings."""
    return {"params": params.model_dump(include={"n", "temperature", "top_p", "max_tokens", "stop", "seed"})}


def _close(batcher: ContinuousBatcher | None, log: RequestLog | None) -> None:
    if batcher is not None:
        batcher.close()
    if log is not None:
        log.close()


def chat_choice(index: int, c: Completion) -> dict:
    """One choice of a chat completion, with OpenAI's chat logprobs when asked."""
    choice = {"index": index, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
    if c.logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": t.token,
                    "logprob": t.logprob,
                    "bytes": list(t.token.encode()),
                    "top_logprobs": [{"token": k, "logprob": v, "bytes": list(k.encode())} for k, v in t.top.items()],
                }
                for t in c.logprobs
            ]
        }
    return choice


def completion_choice(index: int, c: Completion) -> dict:
    """One choice of a text completion, with the legacy completions API's logprobs when asked."""
    logprobs = None
    if c.logprobs is not None:
        logprobs = {
            "tokens": [t.token for t in c.logprobs],
            "token_logprobs": [t.logprob for t in c.logprobs],
            "top_logprobs": [t.top for t in c.logprobs],
            "text_offset": text_offsets([t.token for t in c.logprobs]),
        }
    return {"index": index, "text": c.text, "logprobs": logprobs, "finish_reason": c.finish_reason}


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"
