"""Chat templates rendered by finch itself, so every backend feeds the model the same prompt.

The environment mirrors transformers' apply_chat_template (sandboxed Jinja, trim_blocks, lstrip_blocks,
raise_exception), so a template renders here exactly as it does in the HF tokenizer.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from finch.errors import UsageError


def _raise(message: str) -> None:
    raise TemplateError(message)


@lru_cache(maxsize=8)
def _compile(template: str):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template)


def render_chat(
    template: str,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    try:
        return _compile(template).render(
            messages=messages, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as e:
        raise UsageError(f"chat template: {e}") from None
