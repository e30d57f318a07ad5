"""Native turn formats for base models that ship without a chat template.

A base model has no chat template, but its family has a turn format (Gemma's `<start_of_turn>` turns, Llama 3's
header tokens, ChatML). finch fine-tunes into that format so the tuned model later works with tools that know the
family, and stops generation at the end-of-turn token rather than running on.
"""

from __future__ import annotations

from dataclasses import dataclass

GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set first_user_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
{{- message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<start_of_turn>model\n' }}
{%- endif -%}"""

LLAMA3_TEMPLATE = """{{ bos_token }}
{%- for message in messages -%}
{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif -%}"""

CHATML_TEMPLATE = """{%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|im_start|>assistant\n' }}
{%- endif -%}"""

# For tokenizers without family tokens: the same turns in plain text, each ended by the tokenizer's EOS.
CHATML_TEXT_TEMPLATE = """{%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + eos_token + '\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|im_start|>assistant\n' }}
{%- endif -%}"""


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    end_of_turn: str | None  # token that ends a turn; None = the tokenizer's EOS


GEMMA = ChatFormat("gemma", GEMMA_TEMPLATE, "<end_of_turn>")
LLAMA3 = ChatFormat("llama3", LLAMA3_TEMPLATE, "<|eot_id|>")
CHATML = ChatFormat("chatml", CHATML_TEMPLATE, "<|im_end|>")


def native_chat_format(model_type: str, vocab: set[str] | dict[str, int]) -> ChatFormat:
    """The turn format of a model family, chosen by architecture and confirmed by the special tokens it has."""
    if model_type.startswith("gemma") and "<start_of_turn>" in vocab:
        return GEMMA
    if "<|eot_id|>" in vocab and "<|start_header_id|>" in vocab:
        return LLAMA3
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return CHATML
    # No family tokens to use: ChatML written in plain text still trains and ends on the tokenizer's EOS.
    return ChatFormat("chatml-text", CHATML_TEXT_TEMPLATE, None)
