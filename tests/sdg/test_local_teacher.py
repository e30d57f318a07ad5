"""A local teacher (llama.cpp, here a tiny random GGUF) is prefilled with the start of the answer format, and a call
whose answer reads as nothing is asked once more: a base model given only an instruction often writes anything."""

from __future__ import annotations

import pytest

from finch.fileio import read_jsonl
from finch.inference.llama_cpp_backend import LlamaCppBackend
from finch.sdg import load_pipeline
from finch.sdg.chunking import approximate_tokens
from finch.sdg.generate import GenerateOptions, NoProgress, block_calls, plan_leaf, retry_calls, run_calls
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir


@pytest.fixture(scope="module")
def backend(tiny_gemma3_gguf):
    backend = LlamaCppBackend(tiny_gemma3_gguf, n_ctx=2048, batch_slots=2)
    yield backend
    backend.close()


def knowledge_qa_calls(tmp_path):
    pipeline = load_pipeline("full")
    block = next(b for b in pipeline.knowledge if b.name == "qa").model_copy(update={"max_tokens": 12})
    leaf = next(r for r in check_taxonomy([sample_taxonomy_dir()]).leaves if r.name.startswith("knowledge"))
    plan = plan_leaf(leaf, GenerateOptions(output=tmp_path, scale=1, limit_per_leaf=3), approximate_tokens)
    return block, block_calls(pipeline, block, plan, plan.sources, seed=42, index=1)


def test_the_answer_is_prefilled_read_with_its_prefill_and_an_unreadable_one_asked_again_with_another_seed(
    backend, tmp_path, monkeypatch
):
    block, calls = knowledge_qa_calls(tmp_path)
    assert len(calls) == 1 and calls[0].prefill == "Question:" and calls[0].count == 3
    sent = []
    real = backend.chat_stream

    def recording(requests):
        for key, completion in real(requests):
            yield key, completion
            sent.extend((messages, params) for _, messages, params in requests)  # what the caller queued meanwhile

    monkeypatch.setattr(backend, "chat_stream", recording)
    journal = tmp_path / "qa.jsonl"
    grown = []
    progress = NoProgress()
    progress.grow = grown.append
    run_calls(backend, calls, block, journal, 1, progress)
    record, again_record = read_jsonl(journal)
    assert record["raw"].startswith("Question:")  # what was parsed: the prefill and the completion after it
    # a random model writes no Question/Answer pair: in the same run the call is asked again, the same prompt with
    # another seed, and the retry is not retried
    assert record["items"] == [] and record["rejected"] == {"parse_error": 3}
    assert again_record["call"] == calls[0].id + ".again" and grown == [1]
    [again] = retry_calls(block, calls, [record])
    assert again.id == again_record["call"] and again.messages == calls[0].messages
    assert again.params.seed != calls[0].params.seed and again.prefill == "Question:"
    assert [params for _, params in sent] == [again.params]
    assert sent[0][0] == [*calls[0].messages, {"role": "assistant", "content": "Question:"}]

    # a rerun into the same journal asks nothing; a fresh one asks the same and reads the same
    run_calls(backend, calls, block, journal, 1, NoProgress())
    assert len(read_jsonl(journal)) == 2 and len(sent) == 1
    run_calls(backend, calls, block, tmp_path / "rerun.jsonl", 1, NoProgress())
    assert [r["raw"] for r in read_jsonl(tmp_path / "rerun.jsonl")] == [record["raw"], again_record["raw"]]


def test_only_a_generating_call_that_read_as_nothing_is_asked_again(tmp_path):
    block, calls = knowledge_qa_calls(tmp_path)
    pair = {"question": "Who made it?", "answer": "Orlen Instruments."}
    assert retry_calls(block, calls, [{"call": calls[0].id, "items": [pair], "rejected": {"parse_error": 2}}]) == []
    judge = next(b for b in load_pipeline("full").knowledge if b.type == "judge")
    assert retry_calls(judge, calls, [{"call": calls[0].id, "items": []}]) == []
    cover = next(b for b in load_pipeline("full").knowledge if b.type == "cover")  # its calls are each asked once
    assert retry_calls(cover, calls, [{"call": calls[0].id, "items": []}]) == []
