"""Reading a qna.yaml safely, with the line and column of every value, and the YAML-level rules.

The file is read as a stream of libyaml parser events and turned into plain Python values here, without PyYAML's
composer or constructor: tags are reported, never executed; duplicate keys are errors (PyYAML keeps the last one
silently); aliases are expanded under a budget (no billion laughs); nesting depth is bounded (libyaml's C composer
recurses and can crash the interpreter on deeply nested input, the event parser does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from finch.taxonomy.problems import Reporter

MAX_FILE_BYTES = 1_000_000  # a leaf is a few KB; this bounds memory and time
MAX_VALUES = 100_000  # values after alias expansion
MAX_DEPTH = 32  # a leaf nests 5 levels deep

DEPTH_MESSAGE = (
    f"values nested more than {MAX_DEPTH} levels deep; a leaf nests 5 levels (is a bracket or brace left open?)"
)
_LIBYAML_DEPTH = "maximum nesting depth"  # the scanner's own words, whatever its limit

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "null", "bool", "int", "float", "timestamp")}
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_TAB_INDENT = re.compile(r"^ *\t", re.MULTILINE)

Path_ = tuple  # a path into the data: keys and list indexes, e.g. ("seed_examples", 0, "question")


@dataclass
class Parsed:
    """The file's values, and where each value (and each mapping key) starts, as 1-based (line, col)."""

    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def pos(self, path: Path_) -> tuple[int, int]:
        """The position of the value at `path`, or of the nearest enclosing value that has one."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def key_pos(self, path: Path_) -> tuple[int, int]:
        """The position of the key naming the value at `path` (falls back to the value's position)."""
        return self.key_positions.get(tuple(path)) or self.pos(path)


class _Stop(Exception):
    """The file cannot be read further; the reason was already reported."""


def _mark(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def read_text(path: Path, rep: Reporter) -> str | None:
    """The file as text, or None after reporting why it is not readable UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            rep.error(
                "file-size",
                f"file is {size:,} bytes; a qna.yaml over {MAX_FILE_BYTES:,} bytes is not a taxonomy leaf "
                "(seed examples are a few KB; long material belongs in the knowledge document)",
            )
            return None
        raw = path.read_bytes()
    except OSError as e:
        rep.error("unreadable", f"cannot read the file: {e.strerror or e}")
        return None
    if b"\x00" in raw:
        rep.error("binary", "binary file (it holds NUL bytes): a qna.yaml must be YAML text")
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        rep.error(
            "utf-8",
            f"not UTF-8 text: byte 0x{raw[e.start]:02x} cannot be decoded ({e.reason}); "
            "save the file as UTF-8 (it may be Latin-1 or UTF-16)",
            (line, col),
        )
        return None


def parse_yaml(text: str, rep: Reporter) -> Parsed | None:
    """Parse YAML text into values with positions; None when nothing usable came out (reasons are in `rep`)."""
    tab_lines = {text.count("\n", 0, m.start()) + 1: m.end() - m.start() for m in _TAB_INDENT.finditer(text)}
    builder = _Builder(rep)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except _Stop:
        return None
    except yaml.MarkedYAMLError as e:
        line, col = _mark(e.problem_mark) if e.problem_mark else (_mark(e.context_mark) if e.context_mark else (0, 0))
        if _LIBYAML_DEPTH in (e.problem or ""):  # libyaml ≥ 0.2.6 stops deep nesting before finch sees the events
            rep.error("yaml-depth", DEPTH_MESSAGE, (line, col))
        elif line in tab_lines:
            rep.error(
                "tabs",
                "tab character in the indentation; YAML indents with spaces only (replace the tab with spaces)",
                (line, tab_lines[line]),
            )
        else:
            problem = e.problem or "invalid YAML"
            context = f" {e.context}" if e.context else ""
            start = _mark(e.context_mark) if e.context_mark else None
            if start and "end of stream" in problem:  # the fix is where the unclosed thing starts
                message = f"invalid YAML: the file ends{context} that starts here (a quote or bracket left open?)"
                line, col = start
            elif start and start[0] != line:
                message = f"invalid YAML: {problem}{context} that starts at line {start[0]}"
            else:
                message = f"invalid YAML: {problem}{context}"
            rep.error("yaml-syntax", message, (line, col))
        return None
    except yaml.reader.ReaderError as e:
        rep.error(
            "yaml-syntax",
            f"invalid YAML: character {ord(e.character) if isinstance(e.character, str) else e.character:#06x} "
            "is not allowed in YAML (a control character); remove it",
            _line_col(text, e.position),
        )
        return None
    except yaml.YAMLError as e:
        rep.error("yaml-syntax", f"invalid YAML: {str(e).splitlines()[0]}")
        return None
    for line, col in sorted(tab_lines.items()):
        rep.warning(
            "tabs",
            "tab character at the start of a line; inside a block of text it becomes part of the text. "
            "Indent with spaces",
            (line, col),
        )
    if builder.empty:
        rep.error("empty", "the file is empty: a leaf needs a version, created_by and seed_examples")
        return None
    return builder.parsed


class _Frame:
    __slots__ = ("kind", "value", "path", "key", "key_pos", "seen", "anchor", "size", "start")

    def __init__(self, kind: str, value: Any, path: Path_, anchor: str | None, start: tuple[int, int]):
        self.kind = kind  # "map" or "seq"
        self.value = value
        self.path = path
        self.key: Any = _NO_KEY
        self.key_pos: tuple[int, int] = start
        self.seen: dict[Any, int] = {}  # key -> line of its first occurrence
        self.anchor = anchor
        self.size = 1
        self.start = start


_NO_KEY = object()
_SKIP = object()  # a value that could not be used (its problem is reported)


class _Builder:
    """Turns parser events into dicts, lists and scalars, recording positions and reporting YAML-level problems."""

    def __init__(self, rep: Reporter):
        self.rep = rep
        self.stack: list[_Frame] = []
        self.parsed = Parsed(data=None)
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, expanded size)
        self.open_anchors: set[str] = set()
        self.total = 0
        self.documents = 0
        self.empty = True

    # -- where the next value goes
    def _child_path(self) -> Path_ | None:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.kind == "seq":
            return (*top.path, len(top.value))
        if top.key is _NO_KEY:
            return None  # this value is a key
        return (*top.path, top.key)

    def _count(self, n: int, pos: tuple[int, int]) -> None:
        self.total += n
        if self.total > MAX_VALUES:
            self.rep.error(
                "alias-bomb",
                f"aliases expand this file to more than {MAX_VALUES:,} values (an alias bomb?); "
                "write the values out instead of nesting aliases",
                pos,
            )
            raise _Stop

    def _tag_ok(self, tag: str | None, allowed: set[str], pos: tuple[int, int]) -> bool:
        if tag is None or tag == "!" or tag in allowed:
            return True
        shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
        self.rep.error(
            "yaml-tag",
            f"YAML tag '{shown}' is not allowed: finch reads plain text, numbers and lists, and never runs tags "
            "(remove the tag)",
            pos,
        )
        return False

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.rep.error(
                    "multiple-documents",
                    "a second YAML document starts here ('---'); a qna.yaml holds exactly one",
                    _mark(event.start_mark),
                )
                raise _Stop
            return
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
            return
        pos = _mark(event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            self.empty = False
            self._count(1, pos)
            value = self._scalar(event, pos)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self._add(value, pos, 1)
        elif isinstance(event, yaml.AliasEvent):
            self.empty = False
            if event.anchor in self.open_anchors:
                self.rep.error("yaml-alias", f"alias *{event.anchor} refers to a value that contains it", pos)
                raise _Stop
            if event.anchor not in self.anchors:  # libyaml's parser leaves this to the composer
                self.rep.error("yaml-alias", f"alias *{event.anchor} names no anchor (&{event.anchor}) above it", pos)
                raise _Stop
            value, size = self.anchors[event.anchor]
            self._count(size, pos)
            self._add(value, pos, size)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self.empty = False
            if len(self.stack) >= MAX_DEPTH:
                self.rep.error("yaml-depth", DEPTH_MESSAGE, pos)
                raise _Stop
            self._count(1, pos)
            is_map = isinstance(event, yaml.MappingStartEvent)
            allowed = {_TAG + "map"} if is_map else {_TAG + "seq"}
            self._tag_ok(event.tag, allowed, pos)
            path = self._child_path()
            if path is None:
                self.rep.error("yaml-key", "a key must be plain text, not a list or mapping", pos)
                raise _Stop
            if event.anchor:
                self.open_anchors.add(event.anchor)
            self.stack.append(_Frame("map" if is_map else "seq", {} if is_map else [], path, event.anchor, pos))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            if frame.anchor:
                self.open_anchors.discard(frame.anchor)
                self.anchors[frame.anchor] = (frame.value, frame.size)
            self._add(frame.value, frame.start, frame.size, path=frame.path)

    def _scalar(self, event: yaml.ScalarEvent, pos: tuple[int, int]) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        elif not self._tag_ok(tag, _SCALAR_TAGS, pos):
            return event.value
        if tag == _TAG + "str" or tag == _TAG + "timestamp":  # dates stay text
            return event.value
        if tag == _TAG + "merge":
            self.rep.error("yaml-merge", "merge keys ('<<') are not supported; write the fields out", pos)
            return _SKIP
        try:
            node = yaml.ScalarNode(tag, event.value)
            if tag == _TAG + "null":
                return None
            if tag == _TAG + "bool":
                return _constructor.construct_yaml_bool(node)
            if tag == _TAG + "int":
                return _constructor.construct_yaml_int(node)
            if tag == _TAG + "float":
                return _constructor.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            self.rep.error("yaml-tag", f"'{event.value}' is not a valid value for its tag {event.tag}", pos)
            return event.value
        return event.value

    def _add(self, value: Any, pos: tuple[int, int], size: int, path: Path_ | None = None) -> None:
        if not self.stack:
            self.parsed.data = value
            self.parsed.positions[()] = pos
            return
        top = self.stack[-1]
        top.size += size
        if top.kind == "seq":
            child = (*top.path, len(top.value))
            top.value.append(value)
            self.parsed.positions.setdefault(child, pos)
            return
        if top.key is _NO_KEY:  # this scalar is a key
            if value is _SKIP:
                top.key = _SKIP
                return
            key = value if isinstance(value, str) else ("null" if value is None else str(value).lower())
            if key in top.seen:
                self.rep.error(
                    "duplicate-key",
                    f"duplicate key '{key}' (first at line {top.seen[key]}); PyYAML would silently keep only "
                    "this last one: remove or rename one of them",
                    pos,
                )
            else:
                top.seen[key] = pos[0]
            top.key, top.key_pos = key, pos
            self.parsed.key_positions[(*top.path, key)] = pos
            return
        key, top.key = top.key, _NO_KEY
        if key is _SKIP:
            return
        top.value[key] = value
        self.parsed.positions[(*top.path, key)] = pos


def load_yaml_file(path: Path, rep: Reporter) -> Parsed | None:
    text = read_text(path, rep)
    return None if text is None else parse_yaml(text, rep)
