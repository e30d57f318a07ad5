"""finch chat: one-shot answers in scripts, the REPL through a real pseudo-terminal, and history trimming."""

from __future__ import annotations

import json
import os
import sys

import pytest

from finch.chat.session import ChatSession
from finch.errors import UsageError
from finch.inference import GenerationParams, load_backend
from tests.conftest import REPO, assert_one_line_error, run_finch


def test_one_question_prints_plain_text_and_exits(tiny_gemma3_gguf, finch_home):
    args = ("chat", "--model", str(tiny_gemma3_gguf), "--temperature", "0", "--max-tokens", "8")
    first = run_finch(*args, "-q", "What is the weather?")
    assert first.returncode == 0, first.stderr
    assert first.stdout.endswith("\n") and "\x1b[" not in first.stdout  # no terminal escapes in a pipe
    assert run_finch(*args, "-q", "What is the weather?").stdout == first.stdout  # greedy: repeatable


def test_chat_errors_are_one_line(tiny_gemma3_gguf, finch_home):
    result = run_finch("chat", "--model", str(tiny_gemma3_gguf), "--endpoint", "http://127.0.0.1:9", "-q", "x")
    assert_one_line_error(result, 2, "pass one of them")
    result = run_finch("chat", "--model", str(tiny_gemma3_gguf), "--temperature", "9", "-q", "x")
    assert_one_line_error(result, 2, "--temperature")


def test_repl_commands_through_a_pty(tiny_gemma3_gguf, finch_home, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    saved = tmp_path / "conversation.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "FINCH_HOME": str(finch_home)}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "finch.cli.main", "chat", "--model", str(tiny_gemma3_gguf), "--max-tokens", "6", "--system", "Be kind."],
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    child.expect(">>> ")
    child.sendline("/h")
    child.expect("/m            multi-line input")
    child.expect(">>> ")
    child.sendline("/t 0")
    child.expect("temperature 0.0")
    child.expect(">>> ")
    child.sendline("Hello there")
    child.expect(">>> ")
    child.sendline("/m")
    child.expect(r"\.\.\. ")
    child.sendline("line one")
    child.expect(r"\.\.\. ")
    child.sendline("/end")
    child.expect(">>> ")
    child.sendline(f"/s {saved}")
    child.expect("saved to")
    child.expect(">>> ")
    data = json.loads(saved.read_text())
    assert data["system"] == "Be kind."
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in data["messages"] if m["role"] == "user"] == ["Hello there", "line one"]
    child.sendline("/n")
    child.expect("new session")
    child.sendline(f"/l {saved}")
    child.expect("loaded 4 messages")
    child.sendline("/bogus")
    child.expect("unknown command /bogus")
    child.sendline("/q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_history_is_trimmed_to_fit_the_context(tiny_llama_gguf, tmp_path):
    backend = load_backend(str(tiny_llama_gguf), tmp_path, ctx=128)
    session = ChatSession(backend, GenerationParams(temperature=0, max_tokens=16), system="Short answers.")
    for i in range(12):
        "".join(session.ask(f"Question number {i} about the weather today?"))
    assert session.prompt_tokens(session.conversation()) <= 128 - 16
    assert session.messages[-2]["content"] == "Question number 11 about the weather today?"
    assert len(session.messages) < 24  # old exchanges were dropped
    with pytest.raises(UsageError, match="does not fit the context"):
        "".join(session.ask("weather " * 200))
    assert session.messages[-2]["content"] == "Question number 11 about the weather today?"  # nothing half-added
    backend.close()
