"""A scripted OpenAI-compatible teacher over real HTTP for SDG tests.

It answers by what the prompt asks (the phrases of finch's prompt templates) and by the request's `seed`, so the
same request always gets the same answer, whatever the order requests arrive in. Each list it writes mixes item
types the filters must handle; `emitted` counts them, so tests can check every stage's bookkeeping:

  good      a fresh, unique item
  offtopic  judged 1 ("OFFTOPIC" in it)            -> low_rating at the first judge
  garbled   the judge answers without a rating      -> unparseable_rating at the first judge
  seeddup   repeats a seed example its prompt shows  -> kept, counted as seed_copies at dedup (a repeat of one
                                                        already copied: duplicate)
  testdup   repeats a held-out seed question, which   -> matches_test at dedup
            no prompt shows: the test tells the teacher (`held_out`), knowledge leaf only
  short     a malformed item (too short / no answer) -> parse_error at expand
  wrong     answered "BADANSWER", judged 2           -> low_rating at the answer judge
  long      its answer runs out of tokens            -> truncated at the response step

Asked for pairs about a passage's missing key facts (the `cover` block), it writes, by turns:

  cover_good        the answer states its fact         -> kept, with the fact in the row's `covers`
  cover_nofact      the answer states no listed fact   -> no_missing_fact
  cover_ungrounded  the answer adds a number the excerpt does not state -> ungrounded
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import send_json

KINDS = ("good", "offtopic", "garbled", "seeddup", "short", "wrong", "long", "testdup")
WORDS = [
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "glacier",
    "harbor",
    "iris",
    "juniper",
    "kelp",
    "lagoon",
    "meadow",
    "nectar",
    "orchid",
    "pebble",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "violet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "anchor",
    "beacon",
    "canyon",
    "dune",
    "estuary",
    "falcon",
    "grove",
    "heron",
    "island",
    "jasper",
    "kestrel",
    "lantern",
    "marsh",
    "nimbus",
    "oasis",
    "prairie",
    "quill",
    "reef",
    "summit",
    "thistle",
    "upland",
    "valley",
    "wharf",
    "yonder",
    "zenith",
    "acorn",
    "bramble",
    "cobalt",
    "dawn",
    "egret",
    "fern",
    "garnet",
    "hazel",
    "ivy",
    "jade",
]


def words(seed: int, k: int, n: int = 9) -> str:
    rng = random.Random(f"{seed}-{k}")
    return " ".join(rng.choice(WORDS) for _ in range(n))


def kind_of(seed: int, k: int) -> str:
    return KINDS[(seed + k) % len(KINDS)]


def answer_like(prompt: str, text: str) -> str:
    """A leaf whose examples answer in JSON (order_details) gets a JSON object with their keys, as a teacher that
    follows the examples writes; finch keeps no other answer for such a leaf."""
    if '"deliver_by"' not in prompt:
        return text
    return json.dumps({"name": text, "item": "mug", "quantity": 1, "deliver_by": None})


def judged_item(prompt: str) -> str:
    """The part of a judge prompt that holds the item: after the rated examples, before the reply instructions."""
    item = prompt.split("Reply in the form", 1)[0]
    return item.rsplit("\nRating: ", 1)[1] if "\nRating: " in item else item.split("Give 5 if", 1)[0]


class ScriptedTeacher(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay: float = 0.0, fail_after: int | None = None, held_out: tuple[str, ...] = ()):
        self.delay, self.fail_after, self.held_out = delay, fail_after, held_out
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.emitted: Counter = Counter()
        self.copied: Counter = Counter()  # seed questions the seeddup items repeated, how often each
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def answer(self, body: dict) -> tuple[str, str]:
        """(text, finish_reason) for a chat request."""
        prompt = "\n".join(m["content"] for m in body["messages"])
        seed = body.get("seed", 0)
        if m := re.search(r"Write (\d+) new (questions|passages) for this task", prompt):
            return self._list(int(m.group(1)), seed, prompt, m.group(2)), "stop"
        if m := re.search(r"write (\d+) new pairs about", prompt, re.IGNORECASE):
            return self._records(int(m.group(1)), seed, prompt, grounded=False, knowledge=True), "stop"
        if m := re.search(r"Write (\d+) pairs, one for each of these facts", prompt):
            return self._cover(int(m.group(1)), seed, prompt), "stop"
        if m := re.search(r"Write (\d+) new examples for this task", prompt):
            return self._records(int(m.group(1)), seed, prompt, grounded="Context:" in prompt), "stop"
        if "Write one question about the passage" in prompt:
            passage = prompt.split("Passage:\n", 1)[1].split("\n\nAnswer with", 1)[0]
            return f"What does the passage say about {passage.strip()}?", "stop"
        if "Answer with the letter of the right choice" in prompt:  # its own question: every 4th it gets wrong
            number = int(re.search(r"in the excerpt (\d+)\?", prompt).group(1))
            letters = re.findall(r"^([ABCD])\) (.+)$", prompt, re.M)
            right = next(letter for letter, text in letters if text == words(number, 2, 3))  # what it wrote as B
            if number % 4 == 1:
                self._count("mcq_unconfirmed")
                return f"{'A' if right != 'A' else 'D'}) is right.", "stop"
            return right, "stop"
        if "Write one multiple-choice question" in prompt:
            if seed % 3 == 0:
                self._count("mcq_malformed")
                return "A question: which is it? maybe the first one", "stop"
            self._count("mcq_good")
            choices = "".join(f"{letter}) {words(seed, k + 1, 3)}\n" for k, letter in enumerate("ABCD"))
            return f"Question: Which is named in the excerpt {seed}?\n{choices}Answer: B", "stop"
        if "Answer the question for this task" in prompt:
            question = prompt.rsplit("Question: ", 1)[1]
            if "LONG" in question:
                return "a very long answer that goes on and on", "length"
            if "WRONG" in question:
                return "BADANSWER", "stop"
            return answer_like(prompt, f"The answer is {words(seed, 99, 4)}."), "stop"
        if re.search(r"Rate (questions|answers|how faithful)", prompt):
            item = judged_item(prompt)
            if "GARBLED" in item:
                return "Looks fine to me!", "stop"
            if "OFFTOPIC" in item:
                return "Rating: 1", "stop"
            if "BADANSWER" in item:
                return "The answer is poor.\nRating: 2", "stop"
            return ("**Rating:** 5" if seed % 2 else "Rating: 4"), "stop"
        return "I do not understand.", "stop"

    def _count(self, kind: str) -> None:
        with self.lock:
            self.emitted[kind] += 1

    def _item_kind(self, seed: int, k: int, allowed: tuple[str, ...]) -> str:
        kind = kind_of(seed, k)
        if kind not in allowed or (kind == "testdup" and not self.held_out):
            kind = "good"
        self._count(kind)
        return kind

    def _text(self, kind: str, seed: int, k: int, prompt: str) -> str:
        if kind == "seeddup":
            copied = re.search(r"^(?:\d+\. |Question: )(.+)$", prompt.split("xamples", 1)[1], re.M).group(1)
            with self.lock:
                self.copied[copied] += 1
            return copied
        if kind == "testdup":
            return self.held_out[(seed + k) % len(self.held_out)]
        marker = {"offtopic": "OFFTOPIC ", "garbled": "GARBLED ", "wrong": "WRONG ", "long": "LONG "}.get(kind, "")
        return f"{marker}{words(seed, k)} ?"

    def _list(self, count: int, seed: int, prompt: str, what: str) -> str:
        lines = [f"Sure! Here are {count} new {what}:"]
        allowed = ("good", "offtopic", "garbled", "short", "wrong", "long")
        if what == "questions":
            allowed += ("seeddup",)
        for k in range(count):
            kind = self._item_kind(seed, k, allowed)
            lines.append(f"{k + 1}. ok" if kind == "short" else f"{k + 1}. {self._text(kind, seed, k, prompt)}")
        return "\n".join(lines)

    def _cover(self, count: int, seed: int, prompt: str) -> str:
        facts = re.findall(r"^- (.+)$", prompt.split("states these facts:", 1)[1], re.M)[:count]
        parts = []
        for k, fact in enumerate(facts):
            kind = ("cover_good", "cover_nofact", "cover_ungrounded")[(seed + k) % 3]
            self._count(kind)
            answer = {
                "cover_good": f"The excerpt states {fact}.",
                "cover_nofact": f"It is {words(seed, k + 30, 4)}.",
                "cover_ungrounded": f"The excerpt states {fact} and 987654 kelvin.",
            }[kind]
            parts.append(f"Question: What does the excerpt say about {words(seed, k + 40)}?\nAnswer: {answer}")
        return "\n\n".join(parts)

    def _records(self, count: int, seed: int, prompt: str, grounded: bool, knowledge: bool = False) -> str:
        if knowledge:
            allowed = ("good", "offtopic", "garbled", "seeddup", "short", "wrong", "testdup")
        else:
            allowed = ("good", "seeddup", "short")  # the simple pipeline has no judges
        if grounded:
            allowed = ("good", "short")  # a grounded question repeats a seed only with its context
        parts = []
        for k in range(count):
            kind = self._item_kind(seed, k, allowed)
            question = self._text(kind, seed, k, prompt)
            answer = "BADANSWER" if kind == "wrong" else answer_like(prompt, f"It is {words(seed, k + 50, 4)}.")
            context = f"Context: {words(seed, k + 70, 12)}\n" if grounded else ""
            if kind == "short":
                parts.append(f"{context}Question: {question}")
            else:
                parts.append(f"{context}Question: {question}\nAnswer: {answer}")
        return "\n\n".join(parts)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedTeacher

    def _send(self, status: int, body: dict) -> None:
        send_json(self, status, body)

    def do_GET(self):  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "scripted-teacher", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            self.server.requests.append(body)
            failing = self.server.fail_after is not None and len(self.server.requests) > self.server.fail_after
        if failing:
            self._send(503, {"error": {"message": "teacher overloaded"}})
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        text, finish = self.server.answer(body)
        self._send(
            200,
            {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10},
            },
        )

    def log_message(self, *args):
        pass


def start_teacher(**kwargs) -> ScriptedTeacher:
    server = ScriptedTeacher(**kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
