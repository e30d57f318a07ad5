"""Batched decoding (several sequences through one llama.cpp context) and next-token probabilities, on tiny real
GGUF models."""

from __future__ import annotations

import math
from collections import deque

import pytest

from finch.inference import GenerationParams
from finch.inference.base import chat_prompt_ids
from finch.inference.llama_batch import common_prefix
from finch.inference.llama_cpp_backend import LlamaCppBackend
from finch.inference.params import Completion

GREEDY = GenerationParams(temperature=0, max_tokens=16)


def in_order(backend, requests: list[tuple[list[dict[str, str]], GenerationParams]]) -> list[Completion]:
    """chat_stream's completions in the order of `requests`."""
    done = dict(backend.chat_stream(deque((i, messages, params) for i, (messages, params) in enumerate(requests))))
    return [done[i] for i in range(len(requests))]


def conversation(topic: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Here is a long shared instruction about weather reports. Topic: {topic}"}]


@pytest.fixture(scope="module", params=["gemma3", "llama"])
def backend(request, tiny_gemma3_gguf, tiny_llama_gguf):
    gguf = tiny_gemma3_gguf if request.param == "gemma3" else tiny_llama_gguf
    backend = LlamaCppBackend(gguf, n_ctx=512, batch_slots=2)
    yield backend
    backend.close()


def test_common_prefix_leaves_each_prompt_a_token_of_its_own():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix([[7, 8], [9]]) == 0


def test_a_batch_decodes_each_request_as_if_alone(backend):
    topics = ["rain", "snow", "wind", "rain", "fog"]  # five requests through two slots
    batched = in_order(backend, [(conversation(t), GREEDY) for t in topics])
    alone = [in_order(backend, [(conversation(t), GREEDY)])[0] for t in topics]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert batched[0].text == batched[3].text  # the same prompt, whatever shares its batch
    [[reference]] = backend.chat([conversation("rain")], GREEDY)
    assert batched[0].text == reference.text  # and the same as llama-cpp-python's own greedy decoding
    for c in batched:
        assert 1 <= c.completion_tokens <= 16 and c.finish_reason in ("stop", "length")
        assert c.finish_reason == "stop" or c.completion_tokens == 16


def test_a_freed_slot_takes_the_next_request_and_requests_may_come_while_results_stream(backend):
    short = GREEDY.model_copy(update={"max_tokens": 2})
    requests = deque([("a", conversation("rain"), short), ("b", conversation("snow"), GREEDY)])
    requests.append(("c", conversation("wind"), short))  # waits for a slot: there are two
    landed = {}
    for key, completion in backend.chat_stream(requests):
        landed[key] = completion
        if key == "a":
            requests.append(("d", conversation("fog"), GREEDY))  # asked after the first answer came back
    assert set(landed) == {"a", "b", "c", "d"}
    assert landed["a"].completion_tokens <= 2 and landed["c"].completion_tokens <= 2
    for key, topic, params in (("a", "rain", short), ("b", "snow", GREEDY), ("c", "wind", short), ("d", "fog", GREEDY)):
        [alone] = in_order(backend, [(conversation(topic), params)])
        assert landed[key].text == alone.text


def test_batch_sampling_is_seeded_and_stops_cut_the_text(backend):
    sampled = GenerationParams(temperature=1.0, max_tokens=24, seed=11)
    requests = [(conversation(t), sampled) for t in ("rain", "snow", "wind")]
    first = in_order(backend, requests)
    assert [c.text for c in in_order(backend, requests)] == [c.text for c in first]
    longest = max(first, key=lambda c: len(c.text.strip()))
    stop = longest.text.strip()[len(longest.text.strip()) // 2 :][:2]
    cut = in_order(
        backend, [(conversation(t), sampled.model_copy(update={"stop": [stop]})) for t in ("rain", "snow", "wind")]
    )
    index = first.index(longest)
    assert stop not in cut[index].text and cut[index].finish_reason == "stop"
    assert longest.text.startswith(cut[index].text)


def test_next_token_probs_are_a_distribution_and_do_not_depend_on_the_cache(backend):
    choices = ["a", "b", "1", "2"]
    fresh = backend.next_token_probs(conversation("rain"), "Rating: ", choices)
    backend.next_token_probs(conversation("snow and more snow"), "Rating: ", choices)  # shares a prefix
    again = backend.next_token_probs(conversation("rain"), "Rating: ", choices)
    assert all(p >= 0 for p in fresh.values()) and sum(fresh.values()) <= 1 + 1e-6
    for choice in choices:
        assert math.isclose(fresh[choice], again[choice], rel_tol=1e-3, abs_tol=1e-7)


def test_a_chat_ending_with_an_assistant_message_is_continued_from_it(backend):
    chat = conversation("rain")
    prefilled = [*chat, {"role": "assistant", "content": "Question:"}]
    ids = chat_prompt_ids(backend.prompt_format, backend.tokenize, prefilled)
    # the answer turn is opened and left open after the prefill, not closed and followed by a new one
    assert ids == backend.tokenize(backend.prompt_format.render(chat) + "Question:", add_bos=False)
    rendered = backend.llm.detokenize(ids, special=True).decode()
    assert rendered.endswith("<start_of_turn>model\nQuestion:" if "gemma" in backend.model_name else "Question:")
    assert rendered.count("Question:") == 1
    # both generation paths prompt with it
    [batched] = in_order(backend, [(prefilled, GREEDY)])
    [[alone]] = backend.chat([prefilled], GREEDY)
    assert batched.text == alone.text


def test_a_prompt_reuses_the_longest_cached_prefix_and_decodes_the_same_tokens(backend):
    document = "Document: " + " ".join(f"fact {i} is {i * 7 % 13}." for i in range(30))

    def asking(question: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{document}\nQuestion: {question}"}]

    # an unrelated prompt first keeps the prefix all requests share short: the document is reused slot to slot
    prompts = [conversation("fog"), *(asking(q) for q in ("What is fact 3?", "What is fact 9?", "Why?", "Who?"))]
    reused_before = backend._decoder.reused if backend._decoder else 0
    batched = in_order(backend, [(p, GREEDY) for p in prompts])
    reused = backend._decoder.reused - reused_before
    document_tokens = len(backend.tokenize(document, add_bos=False))
    assert reused >= 3 * document_tokens  # three of the four document prompts started from another's cache
    alone = [in_order(backend, [(p, GREEDY)])[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in alone]
