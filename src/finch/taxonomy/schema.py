"""The qna.yaml schema: InstructLab's knowledge version 3 and skills versions 2 and 3, as pydantic models.

Field names and shapes follow instructlab/schema (v3/knowledge.json, v2 and v3 compositional_skills.json), so
leaves written for InstructLab load unchanged. Unknown fields are errors, as `unevaluatedProperties: false` makes
them there. finch adds one thing: a knowledge `document` without `repo` names files beside the qna.yaml.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finch.taxonomy.lint import Parsed
from finch.taxonomy.problems import Reporter

Kind = Literal["knowledge", "skill"]

KNOWLEDGE_VERSIONS = (3,)
SKILL_VERSIONS = (2, 3)
MIN_SEED_EXAMPLES = 5
MIN_QNA_PER_CONTEXT = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QuestionAnswer(_Strict):
    question: str
    answer: str


class KnowledgeExample(_Strict):
    context: str
    questions_and_answers: list[QuestionAnswer] = Field(min_length=MIN_QNA_PER_CONTEXT)


class Document(_Strict):
    """Where a knowledge leaf's documents are: a git `repo` at a `commit`, or (finch) files beside the qna.yaml."""

    repo: str | None = None
    commit: str | None = None
    folder: str | None = None  # InstructLab v3: a folder on the local machine holding the documents
    patterns: list[str] = Field(min_length=1)

    @property
    def is_git(self) -> bool:
        return self.repo is not None


class Knowledge(_Strict):
    version: int
    created_by: str
    domain: str
    document_outline: str
    seed_examples: list[KnowledgeExample] = Field(min_length=MIN_SEED_EXAMPLES)
    document: Document


class SkillExample(_Strict):
    question: str
    answer: str
    # A grounded skill's example carries context. `None` (absent) is allowed; an explicit null is reported as empty.
    context: str = None  # type: ignore[assignment]


class Skill(_Strict):
    version: int
    created_by: str
    task_description: str
    seed_examples: list[SkillExample] = Field(min_length=MIN_SEED_EXAMPLES)

    @property
    def grounded(self) -> bool:
        """Grounded skills answer from a given context; freeform ones from the question alone."""
        return any(e.context is not None for e in self.seed_examples)


Leaf = Knowledge | Skill
MODELS: dict[str, type[_Strict]] = {"knowledge": Knowledge, "skill": Skill}

# Which model a path inside the data belongs to, for messages that list the allowed fields.
_ITEM_WORDS = {
    "seed_examples": "seed examples",
    "questions_and_answers": "question-and-answer pairs",
    "patterns": "patterns",
}
_OTHER_KIND_FIELDS = {
    "knowledge": {"task_description": "skill"},
    "skill": {"domain": "knowledge", "document": "knowledge", "document_outline": "knowledge"},
}
_FIELD_HINTS = {
    "version": "add `version: 3`",
    "created_by": "your GitHub user name or your name",
    "domain": "a short subject such as 'astronomy'",
    "document_outline": "a one-line summary of the document",
    "document": "where the source documents are: `document: {patterns: [my_doc.md]}` for a file beside the "
    "qna.yaml, or repo + commit + patterns",
    "task_description": "one sentence saying what the skill does",
    "seed_examples": "at least 5 examples",
    "patterns": "a list of file names or globs such as `*.md`",
    "context": "the passage of the document these questions are about",
    "questions_and_answers": "at least 3 question/answer pairs about the context",
}


def _model_at(kind: str, loc: tuple) -> type[BaseModel]:
    """The model class describing the object at `loc` (a pydantic error location)."""
    model: type[BaseModel] = MODELS[kind]
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields.get(str(part))
        if annotation is None:
            break
        inner = annotation.annotation
        args = getattr(inner, "__args__", ())
        candidates = [a for a in (inner, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            break
        model = candidates[0]
    return model


def describe(value: Any) -> str:
    """A value as a user would name it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "a mapping of fields"
    return type(value).__name__


def field_label(loc: tuple) -> str:
    """`seed_examples[2].questions_and_answers[0].answer` style names for messages."""
    label = ""
    for part in loc:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label or "the file"


def _message(kind: str, err: dict, data: Any) -> tuple[str, tuple, bool]:
    """A readable message for one pydantic error, the data path it is about, and whether to point at the key."""
    loc, typ, value = tuple(err["loc"]), err["type"], err.get("input")
    name = field_label(loc)
    last = loc[-1] if loc else ""
    if typ == "missing":
        hint = _FIELD_HINTS.get(str(last))
        return f"missing required field '{last}'" + (f": {hint}" if hint else ""), loc[:-1], False
    if typ == "extra_forbidden":
        model = _model_at(kind, loc[:-1])
        allowed = list(model.model_fields)
        message = f"unknown field '{last}'"
        close = difflib.get_close_matches(str(last), allowed, n=1)
        other = _OTHER_KIND_FIELDS[kind].get(str(last)) if len(loc) == 1 else None
        if close:
            message += f" (did you mean '{close[0]}'?)"
        elif other:
            where = "knowledge/" if other == "knowledge" else "compositional_skills/ or foundational_skills/"
            message += f" (a {other} field: should this leaf be under {where}?)"
        return message + f". Allowed here: {', '.join(allowed)}", loc, True
    if typ == "string_type":
        if value is None:
            return f"'{name}' is empty", loc, False
        extra = (
            f'; put it in quotes: "{value}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        )
        if isinstance(value, bool):
            extra = "; put it in quotes (YAML reads yes/no/true/false/on/off as booleans)"
        return f"'{name}' must be text, found {describe(value)}{extra}", loc, False
    if typ == "list_type":
        return f"'{name}' must be a list ('- ' items), found {describe(value)}", loc, False
    if typ in ("model_type", "dict_type", "model_attributes_type"):
        return f"'{name}' must be a mapping of fields (key: value lines), found {describe(value)}", loc, False
    if typ == "too_short":
        need = err.get("ctx", {}).get("min_length")
        what = _ITEM_WORDS.get(str(last), "items")
        found = len(value) if isinstance(value, list) else 0
        return f"'{name}' needs at least {need} {what}, found {found}", loc, False
    if typ in ("int_type", "int_parsing"):
        return f"'{name}' must be a whole number, found {describe(value)}", loc, False
    return f"'{name}': {err['msg']}", loc, False


def check_version(kind: str, data: dict, parsed: Parsed, rep: Reporter) -> bool:
    """Report a missing, unknown or retired `version`; True when the schema can be checked."""
    versions = KNOWLEDGE_VERSIONS if kind == "knowledge" else SKILL_VERSIONS
    newest = versions[-1]
    if "version" not in data:
        rep.error("version", f"missing required field 'version': add `version: {newest}` at the top", parsed.pos(()))
        return False
    version, pos = data["version"], parsed.pos(("version",))
    if isinstance(version, bool) or not isinstance(version, int):
        rep.error("version", f"'version' must be a whole number such as {newest}, found {describe(version)}", pos)
        return False
    if version in versions:
        return True
    if kind == "knowledge" and version in (1, 2):
        rep.error(
            "version",
            f"knowledge version {version} is a retired InstructLab format; finch reads version 3. To convert: set "
            "`version: 3`, add `document_outline`, remove `task_description`, and group the seed examples as "
            "`context` + `questions_and_answers` (at least 3 pairs per context, at least 5 contexts)",
            pos,
        )
    elif kind == "skill" and version == 1:
        rep.error(
            "version",
            "skills version 1 is a retired InstructLab format; finch reads versions 2 and 3. Set `version: 3` "
            "and keep only created_by, task_description and seed_examples (question, answer, optional context)",
            pos,
        )
    else:
        shown = " and ".join(str(v) for v in versions)
        rep.error(
            "version",
            f"unknown {kind} version {version}; finch reads version{'s' if len(versions) > 1 else ''} {shown}",
            pos,
        )
    return False


def validate(kind: str, data: Any, parsed: Parsed, rep: Reporter) -> Leaf | None:
    """Check `data` against the schema for `kind`; the model when it is valid, else None (problems in `rep`)."""
    if not isinstance(data, dict):
        rep.error(
            "not-a-mapping",
            f"the file must be a mapping of fields (version, created_by, seed_examples, ...), found {describe(data)}",
            parsed.pos(()),
        )
        return None
    if not check_version(kind, data, parsed, rep):
        # Still report unknown top-level fields: they are independent of the version.
        allowed = set(MODELS[kind].model_fields)
        for key in data:
            if key not in allowed:
                message, _, _ = _message(kind, {"loc": (key,), "type": "extra_forbidden"}, data)
                rep.error("unknown-field", message, parsed.key_pos((key,)))
        return None
    try:
        return MODELS[kind].model_validate(data)  # type: ignore[return-value]
    except ValidationError as e:
        for err in e.errors(include_url=False):
            message, loc, at_key = _message(kind, err, data)
            rule = {"extra_forbidden": "unknown-field", "missing": "missing-field", "too_short": "too-few"}.get(
                err["type"], "type"
            )
            if err["type"] == "string_type" and err.get("input") is None:
                rule = "empty"
            rep.error(rule, message, parsed.key_pos(loc) if at_key else parsed.pos(loc))
        return None
