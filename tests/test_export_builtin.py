"""The export round trip on the built-in Gemma 3 270M with a LoRA adapter: the GGUF tokenizes like the HF tokenizer
and agrees with the merged HF model (fp32) on next-token argmax over five ~100-token passages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finch.export import export_model
from finch.models.prepare import prepare_model
from finch.models.resolve import resolve_model

pytestmark = pytest.mark.slow

PASSAGES = [
    "The history of the bicycle begins in the early nineteenth century, when inventors in Europe experimented with "
    "two-wheeled machines pushed along by the rider's feet. Pedals attached to the front wheel appeared in the "
    "1860s, and the safety bicycle, with a chain driving the rear wheel, became popular in the 1880s.",
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon dioxide into sugar "
    "and oxygen. It takes place mostly in the leaves, inside small structures called chloroplasts, which contain "
    "the green pigment chlorophyll that absorbs red and blue light and reflects green light.",
    "To bake a simple loaf of bread, mix flour, water, salt and yeast into a dough, knead it for about ten minutes, "
    "and let it rise in a warm place until it has doubled in size. Shape the loaf, let it rise again, and bake it "
    "in a hot oven until the crust is brown and the bottom sounds hollow when tapped.",
    "The Pacific Ocean is the largest and deepest of the world's oceans. It stretches from the Arctic in the north "
    "to the Southern Ocean in the south, and from Asia and Australia in the west to the Americas in the east. Its "
    "deepest point, in the Mariana Trench, lies nearly eleven kilometres below the surface.",
    "A good night's sleep helps the body and the mind recover. Most adults need between seven and nine hours. "
    "Keeping a regular schedule, avoiding screens before bed and keeping the bedroom cool and dark can all make it "
    "easier to fall asleep and to stay asleep through the night without waking up too early.",
]
CHAT = [{"role": "user", "content": "What is a safety bicycle?"}, {"role": "assistant", "content": "A bicycle."}]


@pytest.fixture(scope="module")
def exported(builtin_home, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    models_dir = builtin_home["models_dir"]
    base_dir = prepare_model(resolve_model("gemma-3-270m", models_dir))
    run = tmp_path_factory.mktemp("run") / "run"
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(0)
    for name, param in lora.named_parameters():
        if "lora_B" in name:  # stands in for a trained adapter: a small, non-zero change
            param.data = torch.randn(param.shape, generator=generator) * 0.01
    lora.save_pretrained(run)
    (run / "run.yaml").write_text("base_model: gemma-3-270m\n")
    results = {"hf": export_model(resolve_model(str(run), models_dir), "hf")}
    merged = resolve_model(str(results["hf"].path), models_dir)  # gguf from the merged dir: merge once, not per type
    for quant in ("f16", "q8_0", "q4_k_m"):
        results[quant] = export_model(merged, "gguf", quant, output=run / "exports" / quant)
    return results


def test_round_trip(exported):
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = exported["hf"].path
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    chat = tokenizer.apply_chat_template(CHAT, tokenize=False)
    sizes, agreements = {}, {}
    for quant, minimum in (("f16", 0.98), ("q8_0", 0.95)):
        gguf = exported[quant].path
        sizes[quant] = gguf.stat().st_size
        llm = Llama(model_path=str(gguf), logits_all=True, n_ctx=512, n_threads=2, verbose=False)
        try:
            assert (
                llm.tokenize(chat.encode(), add_bos=False, special=True)
                == tokenizer(chat, add_special_tokens=False).input_ids
            )
            same = total = 0
            for passage in PASSAGES:
                ids = tokenizer(passage).input_ids
                assert llm.tokenize(passage.encode(), add_bos=True, special=True) == ids
                llm.reset()
                llm.eval(ids)
                llama_argmax = np.array(llm.scores[: len(ids)]).argmax(-1)
                with torch.no_grad():
                    hf_argmax = model(torch.tensor([ids])).logits[0].argmax(-1).numpy()
                same += int((llama_argmax == hf_argmax).sum())
                total += len(ids)
        finally:
            llm.close()
        agreements[quant] = same / total
        assert agreements[quant] >= minimum, (quant, agreements[quant])
    sizes["q4_k_m"] = exported["q4_k_m"].path.stat().st_size
    print("argmax agreement with the merged HF model:", json.dumps(agreements), "sizes:", json.dumps(sizes))
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"]


def test_q4_k_m_answers_and_stops(exported):
    from llama_cpp import Llama

    gguf = exported["q4_k_m"].path
    assert (gguf.parent / "Modelfile").read_text().count('PARAMETER stop "<end_of_turn>"') == 1
    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False)
    try:
        prompt = "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
        result = llm.create_completion(
            llm.tokenize(prompt.encode(), add_bos=False, special=True), max_tokens=32, temperature=0
        )
        assert result["usage"]["completion_tokens"] >= 1
        assert llm.metadata["tokenizer.ggml.eot_token_id"] == "106"
    finally:
        llm.close()
