"""The interactive loop, with InstructLab-like slash commands."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from finch.chat.session import ChatSession
from finch.errors import UsageError

HELP = """commands:
  /q            quit
  /h            this help
  /n            new session (forget the history)
  /m            multi-line input: end with a line holding only /end
  /s FILE       save the conversation
  /l FILE       load a conversation
  /t TEMP       set the temperature"""


def _read(prompt: str) -> str:
    return input(prompt)


def repl(session: ChatSession, console: Console) -> None:
    console.print(f"chatting with {session.backend.model_name}; /h for help, /q to quit.")
    while True:
        try:
            line = _read(">>> ")
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("\n(/q to quit)")
            continue
        command, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        try:
            if command == "/q":
                return
            if command == "/h":
                console.print(HELP, markup=False)
                continue
            if command == "/n":
                session.new()
                console.print("new session")
                continue
            if command == "/s" and arg:
                session.save(Path(arg).expanduser())
                console.print(f"saved to {arg}")
                continue
            if command == "/l" and arg:
                session.load(Path(arg).expanduser())
                console.print(f"loaded {len(session.messages)} messages from {arg}")
                continue
            if command == "/t":
                try:
                    session.params = session.params.model_copy(update={"temperature": float(arg)})
                except ValueError:
                    console.print("usage: /t TEMP (a number, e.g. 0.7)")
                    continue
                console.print(f"temperature {session.params.temperature}")
                continue
            if command == "/m":
                lines = []
                while (more := _read("... ")) != "/end":
                    lines.append(more)
                line = "\n".join(lines)
            elif command.startswith("/"):
                console.print(f"unknown command {command}; /h lists them", markup=False)
                continue
            if not line.strip():
                continue
            try:
                for piece in session.ask(line):
                    console.print(piece, end="", markup=False, highlight=False)
            except KeyboardInterrupt:
                console.print("\n(interrupted)")
            console.print()
        except UsageError as e:
            console.print(f"error: {e}", markup=False)
