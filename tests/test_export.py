"""finch export on tiny real models: merged weights compute what base + adapter compute, GGUFs match them in
llama.cpp (tokenizer ids and next-token argmax), a GGUF LoRA applied by llama.cpp matches the merged GGUF."""

from __future__ import annotations

import numpy as np
import pytest

from finch.errors import UsageError
from finch.export import export_model
from finch.models.resolve import resolve_model
from tests.conftest import run_finch
from tests.tiny_models import write_tiny_lora

PASSAGE = (
    "The weather station measures wind speed, rain and temperature. Every ten minutes it sends its readings to the "
    "console, which keeps a history of the last thirty days and sounds an alarm when the wind is too strong."
)
CHAT = [{"role": "user", "content": "What does it measure?"}, {"role": "assistant", "content": "Wind and rain."}]


@pytest.fixture(scope="module", params=["llama", "gemma3", "qwen2"])
def run(request, tmp_path_factory):
    base = request.getfixturevalue(f"tiny_{request.param}_dir")
    return write_tiny_lora(base, tmp_path_factory.mktemp(f"run-{request.param}") / "run")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def merged(run, models_dir):
    return export_model(resolve_model(str(run), models_dir), "hf")


def llama_logits(gguf, ids, lora=None, tokenize=()):
    """llama.cpp's logits for `ids`, and its tokenization of each (text, add_bos) in `tokenize`."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, logits_all=True, n_ctx=256, verbose=False)
    try:
        llm.eval(ids)
        tokenized = [llm.tokenize(text.encode(), add_bos=add_bos, special=True) for text, add_bos in tokenize]
        return np.array(llm.scores[: len(ids)]), tokenized
    finally:
        llm.close()


def hf_logits(model_dir, ids):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(torch.tensor([ids])).logits[0].numpy()
        )


def test_merged_hf_dir_computes_base_plus_adapter(run, merged, models_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = resolve_model(str(run), models_dir)
    assert merged.path == run / "exports" / "run-hf" and (merged.path / "README.md").is_file()
    assert not list(merged.path.glob("adapter_*"))
    tokenizer = AutoTokenizer.from_pretrained(merged.path)
    assert tokenizer.chat_template
    ids = tokenizer(PASSAGE).input_ids
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(model.base.path, dtype=torch.float32)
        tuned = PeftModel.from_pretrained(base, run)(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(hf_logits(merged.path, ids), tuned, atol=1e-3)
    plain = hf_logits(model.base.path, ids)
    assert np.abs(plain - tuned).max() > 0.1  # the adapter changes the model, so the comparison means something


@pytest.mark.parametrize(("quant", "min_agreement"), [("f16", 0.98), ("q8_0", 0.90)])
def test_gguf_matches_the_merged_model(run, merged, models_dir, quant, min_agreement, tmp_path):
    from transformers import AutoTokenizer

    result = export_model(resolve_model(str(run), models_dir), "gguf", quant, output=tmp_path)
    gguf = result.path
    assert (
        gguf.name == f"run-{quant}.gguf" and (tmp_path / "Modelfile").is_file() and (tmp_path / "README.md").is_file()
    )
    tokenizer = AutoTokenizer.from_pretrained(merged.path)
    ids = tokenizer(PASSAGE).input_ids
    texts = [(PASSAGE, True), (tokenizer.apply_chat_template(CHAT, tokenize=False), False)]
    logits, tokenized = llama_logits(gguf, ids, tokenize=texts)
    for (text, add_bos), got in zip(texts, tokenized):
        assert got == tokenizer(text, add_special_tokens=add_bos).input_ids, text
    agreement = float((logits.argmax(-1) == hf_logits(merged.path, ids).argmax(-1)).mean())
    assert agreement >= min_agreement, agreement


def test_q4_k_m_loads_and_answers(run, models_dir, tmp_path):
    from finch.inference import GenerationParams, load_backend

    result = export_model(resolve_model(str(run), models_dir), "gguf", "q4_k_m", output=tmp_path)
    modelfile = (tmp_path / "Modelfile").read_text()
    assert f"FROM ./{result.path.name}" in modelfile and "PARAMETER stop" in modelfile
    backend = load_backend(str(result.path), models_dir, ctx=128)
    try:
        [[answer]] = backend.chat([CHAT[:1]], GenerationParams(temperature=0, max_tokens=8))
        assert answer.completion_tokens >= 1
    finally:
        backend.close()


def test_gguf_lora_in_llama_cpp_matches_the_merged_gguf(run, merged, models_dir, tmp_path):
    from transformers import AutoTokenizer

    from finch.export import write_gguf

    model = resolve_model(str(run), models_dir)
    lora = export_model(model, "gguf-lora", output=tmp_path / "lora").path
    base_gguf = write_gguf(model.base.path, tmp_path / "base-f32.gguf", dtype="f32")
    merged_gguf = write_gguf(merged.path, tmp_path / "merged-f32.gguf", dtype="f32")
    ids = AutoTokenizer.from_pretrained(merged.path)(PASSAGE).input_ids
    with_lora, _ = llama_logits(base_gguf, ids, lora=lora)
    reference, _ = llama_logits(merged_gguf, ids)
    without, _ = llama_logits(base_gguf, ids)
    np.testing.assert_allclose(with_lora, reference, atol=2e-2)
    assert np.abs(without - reference).max() > 0.1


def test_export_errors(tiny_llama_dir, models_dir):
    plain = resolve_model(str(tiny_llama_dir), models_dir)
    with pytest.raises(UsageError, match="exports a fine-tuned adapter"):
        export_model(plain, "hf")
    with pytest.raises(UsageError, match="--quant q3: choose one of"):
        export_model(plain, "gguf", "q3")


def test_cli_export_needs_a_base_it_can_find(tiny_llama_dir, tmp_path, finch_home):
    run = write_tiny_lora(tiny_llama_dir, tmp_path / "orphan")
    (run / "run.yaml").unlink()
    config = (run / "adapter_config.json").read_text().replace(str(tiny_llama_dir), "")
    (run / "adapter_config.json").write_text(config)
    result = run_finch("export", "--adapter", str(run), "--format", "hf")
    assert result.returncode == 2 and "does not record its base model" in result.stderr
    result = run_finch("export", "--adapter", str(run), "--format", "hf", "--base", str(tiny_llama_dir))
    assert result.returncode == 0, result.stderr
    assert "exported orphan as hf" in result.stdout
