"""/v1/completions with echo + logprobs, as lm-eval's local-completions model scores multiple choice."""

from __future__ import annotations

import httpx

from tests.servers import finch_server


def test_echo_with_logprobs_scores_the_prompt(tiny_gemma3_gguf, tmp_path):
    env = {"FINCH_HOME": str(tmp_path / "home")}
    body = {
        "model": "m",
        "prompt": "the weather is nice",
        "max_tokens": 1,
        "echo": True,
        "logprobs": 1,
        "temperature": 0,
    }
    with finch_server("--model", str(tiny_gemma3_gguf), "--ctx", "128", "--logprobs", env=env) as base:
        response = httpx.post(f"{base}/v1/completions", json=body, timeout=60)
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["text"].startswith("the weather is nice")
        logprobs = choice["logprobs"]
        assert logprobs["token_logprobs"][0] is None  # nothing predicts the first token
        scored = logprobs["token_logprobs"][1:]
        assert len(scored) >= 5 and all(lp <= 0 for lp in scored)
        assert "".join(logprobs["tokens"]).startswith("the weather is nice")
        # each token's offset is where it stands in the text, prompt and completion alike
        offsets, tokens = logprobs["text_offset"], logprobs["tokens"]
        assert len(offsets) == len(tokens) and offsets[0] == 0
        assert all(choice["text"][at : at + len(token)] == token for at, token in zip(offsets, tokens))
    with finch_server("--model", str(tiny_gemma3_gguf), "--ctx", "128", env=env) as base:
        response = httpx.post(f"{base}/v1/completions", json=body, timeout=60)
        assert response.status_code == 400 and "--logprobs" in response.json()["error"]["message"]
