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
    # A base that was never quantized keeps its fine-tune through rounding: nothing needs a finer type.
    assert result.notes and "moved" not in result.notes[0], result.notes


def on_q5_0_grid(model_dir, out_dir):
    """A copy of a tiny model whose matrices sit on llama.cpp's Q5_0 grid, as the built-in model's (dequantized from
    its Q4_K_M GGUF, where 640-wide rows fall back to Q5_0) do."""
    import shutil

    import gguf
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out_dir)
    weights = load_file(out_dir / "model.safetensors")
    for name, tensor in weights.items():
        if tensor.ndim == 2 and "layers." in name:
            grid = gguf.quants.quantize(tensor.float().numpy(), gguf.GGMLQuantizationType.Q5_0)
            dequantized = gguf.quants.dequantize(grid, gguf.GGMLQuantizationType.Q5_0).reshape(tensor.shape)
            weights[name] = tensor.new_tensor(dequantized)
    save_file(weights, out_dir / "model.safetensors", metadata={"format": "pt"})
    return out_dir


def test_q4_k_m_keeps_the_fine_tune_of_an_already_quantized_base(tiny_gemma3_dir, models_dir, tmp_path):
    """Re-quantizing a fine-tune of an on-grid base to the same grid rounds the change away (the premise, checked);
    finch's export measures that and writes those tensors finer, so the GGUF computes the tuned model again."""
    from transformers import AutoTokenizer

    from finch.export import write_gguf
    from finch.export.gguf_writer import gguf_tensor_sources, read_text_config
    from finch.export.merge import merge_adapter
    from finch.export.quantize import _tensor_layout, kept_shares, quantize_gguf

    base = on_q5_0_grid(tiny_gemma3_dir, tmp_path / "base")
    run = write_tiny_lora(base, tmp_path / "run", scale=0.01)  # a small change, as a short fine-tune makes
    model = resolve_model(str(run), models_dir)
    merged = merge_adapter(model, base, tmp_path / "merged")
    config = read_text_config(base)
    base_tensors, tuned_tensors = (gguf_tensor_sources(d, "gemma3", config) for d in (base, merged))
    changed = [n for n in tuned_tensors if n.endswith(("attn_q.weight", "attn_k.weight", "ffn_down.weight"))]
    f16 = write_gguf(merged, tmp_path / "merged-f16.gguf", dtype="f16")
    plain = quantize_gguf(f16, tmp_path / "plain-q4_k_m.gguf", "q4_k_m")
    same_grid = [n for n, t in _tensor_layout(plain)[0].items() if n in changed and t == "Q5_0"]
    assert len(same_grid) >= 4 and max(kept_shares(plain, same_grid, base_tensors, tuned_tensors).values()) < 0.5

    result = export_model(model, "gguf", "q4_k_m", output=tmp_path / "export")
    kept = kept_shares(result.path, changed, base_tensors, tuned_tensors)
    assert min(kept.values()) >= 0.5, kept
    assert "moved to finer types" in result.notes[0]
    assert result.notes[0] in (tmp_path / "export" / "README.md").read_text()
    # The same measure on what llama.cpp computes: the share of the fine-tune's change to the logits each GGUF keeps
    # (fresh rounding noise averages out of a projection; a change rounded away does not).
    ids = AutoTokenizer.from_pretrained(merged)(PASSAGE).input_ids
    untuned = llama_logits(write_gguf(base, tmp_path / "base-f16.gguf", dtype="f16"), ids)[0]
    change = llama_logits(f16, ids)[0] - untuned

    def share_kept(gguf):
        return float(((llama_logits(gguf, ids)[0] - untuned) * change).sum() / (change**2).sum())

    rounded_away, exported = share_kept(plain), share_kept(result.path)  # measured: 0.43, 0.84
    assert exported > 0.7 and exported > rounded_away + 0.25, (rounded_away, exported)


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
