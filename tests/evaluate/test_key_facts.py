"""Key facts: what the extractor cuts out of real and made-up references, when an answer holds a fact, and the
key_facts benchmark end to end against scripted models over real HTTP."""

from __future__ import annotations

import json

import pytest
import yaml

from finch.errors import UsageError
from finch.evaluate.branch import held_out_samples
from finch.evaluate.data import EvalSample
from finch.evaluate.key_facts import (
    KeyFactResult,
    extract_key_facts,
    facts_held,
    key_fact_markdown,
    key_fact_report,
    score_answer,
)
from finch.taxonomy import sample_taxonomy_dir
from tests.evaluate.stub import stub_server

LEAF = sample_taxonomy_dir() / "knowledge" / "products" / "kestrel_vane_k230" / "qna.yaml"


def sample_qna() -> dict[str, str]:
    """The sample knowledge leaf's questions and their seed answers."""
    examples = yaml.safe_load(LEAF.read_text())["seed_examples"]
    return {qa["question"]: " ".join(qa["answer"].split()) for e in examples for qa in e["questions_and_answers"]}


@pytest.mark.parametrize(
    ("question", "facts"),
    [
        ("When was the Kestrel Vane K-230 released, and at what price?", ["14 September 2021", "249 euros"]),
        ("Who founded Orlen Instruments, and where?", ["2009", "Dunmere", "Ilse Varga", "Tomas Orlen"]),
        ("What are the two parts of the K-230 called, and what does each do?", ["Mast Unit", "Perch"]),
        ("How often does the K-230 Mast Unit send a reading?", ["16 seconds"]),
        (
            "What is the radio range of the K-230, and on which frequency does it work?",
            ["150 metres", "868 MHz", "North American", "K-230N", "915 MHz"],
        ),
        ("How much history does the Perch console keep?", ["90 days", "5-minute", "CSV", "USB-C"]),
        ("How do you pair a Perch console with a Mast Unit?", ["SYNC", "5 seconds", "3 minutes"]),
        (
            "At what temperature does the K-230 frost alarm sound by default, and can it be changed?",
            ["2 °C", "0 °C", "5 °C", "0.5 °C"],
        ),
        ("The K-230 console shows E05. What should I do?", ["Mast Unit", "3.6 V", "AA"]),
        ("Which error code does the K-230 show after a power cut, and what is the fix?", ["E09"]),
        # Descriptive answers: nothing a rule can check, so the question is not counted.
        ("Which way must the N arrow on the K-230 Mast Unit point?", []),
        ("What does error E03 mean on a Kestrel Vane K-230?", []),  # E03 is the question's own
    ],
)
def test_key_facts_of_the_sample_leaf(question, facts):
    assert extract_key_facts(sample_qna()[question], question) == facts


WATERLOO = (
    "Napoleon was defeated at the Battle of Waterloo on 18 June 1815 by Wellington. The war cost 2.5 million lives, "
    "about 45% of them French; a screen of 800 × 480 pixels runs firmware 2.4.1 from the 1990s."
)


@pytest.mark.parametrize(
    ("reference", "facts"),
    [
        (
            "The Treaty of Westphalia was signed in 1648 in Osnabrück and Münster.",
            ["Treaty of Westphalia", "1648", "Osnabrück", "Münster"],
        ),
        ("Water boils at 100 °C at sea level.", ["100 °C"]),
        # "Napoleon" opens a sentence and nothing else capitalises it: it could be any sentence's first word.
        (
            WATERLOO,
            ["Battle of Waterloo", "18 June 1815", "Wellington", "2.5 million", "45%", "French"]
            + ["800 × 480 pixels", "2.4.1", "1990s"],
        ),
        # "Pour" and "Ada" open sentences; "Lovelace" is capitalised mid-sentence too, so it stays where it opens one.
        ("Pour 100 mL of water. Ada Lovelace wrote it; Lovelace died in 1852.", ["100 mL", "Lovelace", "1852"]),
        ("Lovelace wrote it. Ada Lovelace died in 1852.", ["Lovelace", "1852"]),
        ("To pair:\n1. Hold SYNC for 5 seconds.\n2) Press Reset once.", ["SYNC", "5 seconds", "Reset"]),
        (
            "Dr. Martin Luther King Jr. spoke on August 28, 1963 in Washington, D.C.",
            ["Martin Luther King", "August 28, 1963", "Washington"],  # "D.C." is two lone initials
        ),
    ],
)
def test_key_facts_of_general_references(reference, facts):
    assert extract_key_facts(reference) == facts


def test_facts_the_question_states_are_not_key_facts():
    reference = "The Kestrel Vane K-230 was released on 14 September 2021 at a launch price of 249 euros."
    assert extract_key_facts(reference) == ["Kestrel Vane", "K-230", "14 September 2021", "249 euros"]
    assert extract_key_facts(reference, "When was the Kestrel Vane K-230 released?") == [
        "14 September 2021",
        "249 euros",
    ]
    # An answer that only echoes the question holds nothing.
    echo = score_answer("When was the Kestrel Vane K-230 released?", reference, "The Kestrel Vane K-230 was released.")
    assert echo == KeyFactResult(["14 September 2021", "249 euros"], [False, False], False, 0.0)
    # A number the question gives is no key fact either; the unit must agree for it to count as given.
    assert extract_key_facts("It shows 11.0 mm, which is 1 mm too high.", "It shows 11.0 mm. Why?") == ["1 mm"]
    assert extract_key_facts("It waits 16 seconds.", "Does it wait 16 minutes?") == ["16 seconds"]


@pytest.mark.parametrize(
    ("answer", "fact", "held"),
    [
        ("It sends one every 16 seconds.", "16 seconds", True),
        ("It sends one every 16-second interval.", "16 seconds", True),
        ("It sends one every sixteen seconds.", "16 seconds", True),
        ("It sends one every 160 seconds.", "16 seconds", False),
        ("It sends one every 140 seconds.", "14 seconds", False),  # "14" is not in "140"
        ("It sends one every 14.5 seconds.", "14 seconds", False),
        ("It sends one every 16 minutes.", "16 seconds", False),  # the unit must agree
        ("It cost €249.", "249 euros", True),
        ("It cost 249 EUR.", "249 euros", True),
        ("It cost 249 dollars.", "249 euros", False),
        ("It cost 249.", "249 euros", False),
        ("It froze at -40 degrees.", "−40 °C", True),  # unicode minus in the fact, ASCII in the answer
        ("It froze at −40°C.", "-40 °C", True),
        ("It froze at 40 °C.", "-40 °C", False),
        ("It froze at -40 °F.", "-40 °C", False),
        ("About 1000 soldiers.", "1,000", True),  # thousands separators
        ("About 1,000,000 soldiers.", "1 million", True),
        ("About 10,000 soldiers.", "1,000", False),
        ("Released on September 14th, 2021.", "14 September 2021", True),
        ("Released on 2021-09-14.", "14 September 2021", True),
        ("Released in September 2021.", "14 September 2021", False),
        ("Released on 14 September 2021.", "September 2021", True),
        ("Released on 14 September 2020.", "14 September 2021", False),
        ("It was founded by ilse varga.", "Ilse Varga", True),
        ("It was founded by Ilse.", "Ilse Varga", False),
        ("Signed in Osnabruck.", "Osnabrück", True),
        ("Two Mast Units.", "Mast Unit", True),
        ("The K-230N has it.", "K-230", False),
        ("The K230N has it.", "K-230N", True),
        ("Error E010.", "E01", False),
        ("A 800x480 screen.", "800 × 480", True),
        ("A 800 × 600 screen.", "800 × 480", False),
        ("Firmware 2.4.10.", "2.4.1", False),
    ],
)
def test_facts_held(answer, fact, held):
    assert facts_held(answer, [fact]) == [held]


def test_score_answer():
    question = "Who founded Orlen Instruments, and where?"
    reference = sample_qna()[question]
    right = "Ilse Varga and Tomas Orlen founded it in Dunmere in 2009."
    assert score_answer(question, reference, right) == KeyFactResult(
        ["2009", "Dunmere", "Ilse Varga", "Tomas Orlen"], [True] * 4, True, 1.0
    )
    wrong = score_answer(question, reference, "Tomas Orlen founded it in Dunmere in 2011.")
    assert wrong.held == [False, True, False, True] and wrong.all_held is False and wrong.fraction == 0.5
    nothing = score_answer("Which way?", "North, because the sun is there.", "North.")
    assert nothing == KeyFactResult([], [], None, None)


def test_key_fact_report_counts_per_leaf():
    samples = [
        EvalSample([{"role": "user", "content": "When?"}], "On 14 September 2021, for 249 euros.", "products"),
        EvalSample([{"role": "user", "content": "Who?"}], "Ilse Varga.", "products"),
        EvalSample([{"role": "user", "content": "Why north?"}], "Because it faces the equator.", "products"),
        EvalSample([{"role": "user", "content": "When was the treaty?"}], "In 1648.", "history"),
    ]
    answers = {
        "base": ["In 2021, for 249 euros.", "I do not know.", "No idea.", "In 1648."],
        "tuned": ["On 14 September 2021 for €249.", "Ilse Varga did.", "The equator.", "In 1649."],
    }
    report = key_fact_report(samples, answers)
    json.dumps(report)  # report.json takes it as it is
    assert report["models"] == {
        "questions": 4,
        "with_facts": 3,
        "all_held": {"base": 1, "tuned": 2},
        "mean_fraction": {"base": pytest.approx(0.5), "tuned": pytest.approx(2 / 3)},
    }
    assert report["leaves"] == [
        {
            "leaf": "products",
            "questions": 3,
            "with_facts": 2,
            "all_held": {"base": 0, "tuned": 2},
            "mean_fraction": {"base": 0.25, "tuned": 1.0},
        },
        {
            "leaf": "history",
            "questions": 1,
            "with_facts": 1,
            "all_held": {"base": 1, "tuned": 0},
            "mean_fraction": {"base": 1.0, "tuned": 0.0},
        },
    ]
    first = report["questions"][0]
    assert first["facts"] == ["14 September 2021", "249 euros"]
    assert first["answers"]["base"] == {
        "answer": "In 2021, for 249 euros.",
        "held": [False, True],
        "all_held": False,
        "fraction": 0.5,
    }
    assert report["questions"][2]["facts"] == [] and report["questions"][2]["answers"]["tuned"]["all_held"] is None
    markdown = key_fact_markdown(report, ["base", "tuned"])
    assert "| products | 3 | 2 | 0/2 | 2/2 |" in markdown and "| history | 1 | 1 | 1/1 | 0/1 |" in markdown
    assert "| 14 September 2021 | no | yes |" in markdown and "no key facts: not counted" in markdown


def test_held_out_knowledge_questions_of_a_dataset(tmp_path):
    from finch.taxonomy import check_taxonomy
    from finch.taxonomy.seed_rows import write_seed_dataset

    write_seed_dataset(check_taxonomy([sample_taxonomy_dir()], skip_documents=True), tmp_path)
    samples, source = held_out_samples(tmp_path, ("knowledge",))
    assert source == str(tmp_path / "test.jsonl")
    assert [s.messages[-1]["content"] for s in samples] == list(sample_qna())[4::5]
    assert len(held_out_samples(tmp_path, ("knowledge",), per_leaf=1)[0]) == 1
    (tmp_path / "skills.jsonl").write_text(
        json.dumps(
            {
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "metadata": {"leaf": "s", "kind": "skill"},
            }
        )
        + "\n"
    )
    assert held_out_samples(tmp_path / "skills.jsonl", ("knowledge",))[0] == []


TUNED_ANSWERS = {
    "How often does the K-230 Mast Unit send a reading?": "Every sixteen seconds.",
    "How do you pair a Perch console with a Mast Unit?": "Hold SYNC for 5 seconds; pairing takes up to 3 minutes.",
    "How do you check the K-230 rain gauge, and what result is acceptable?": (
        "Pour 100 mL through it in 5 minutes: 50 tips, 10.0 mm; 9.6 to 10.4 mm passes."
    ),
    "Which error code does the K-230 show after a power cut, and what is the fix?": "E06: update the firmware.",
}


def test_key_facts_benchmark_end_to_end(tmp_path):
    from finch.evaluate.run import evaluate

    out = tmp_path / "report"
    with (
        stub_server(lambda messages: "I do not know.") as base,
        stub_server(lambda messages: TUNED_ANSWERS[messages[-1]["content"]]) as tuned,
    ):
        results = evaluate(
            {"base": base.url, "tuned": tuned.url}, "key_facts", sample_taxonomy_dir(), out, tmp_path / "models"
        )
    assert results["tuned"] == {
        "all_key_facts": 0.75,
        "key_fact_fraction": 0.75,
        "questions_all_held": 3,
        "questions_with_facts": 4,
        "questions": 4,
    }
    assert results["base"]["questions_all_held"] == 0 and results["base"]["key_fact_fraction"] == 0.0
    report = json.loads((out / "report.json").read_text())
    assert report["per_sample"]["tuned"]["all_key_facts"] == [1.0, 1.0, 1.0, 0.0]
    assert report["leaves"][0]["tuned"] == 0.75 and report["leaves"][0]["all_held"] == {"base": 0, "tuned": 3}
    assert report["questions"][3]["facts"] == ["E09"]
    assert report["questions"][3]["answers"]["tuned"]["answer"] == "E06: update the firmware."
    md = (out / "report.md").read_text()
    assert "| knowledge->products->kestrel_vane_k230 | 4 | 4 | 0/4 | 3/4 |" in md
    assert "| 16 seconds | no | yes |" in md and "| E09 | no | no |" in md
    assert (out / "key_facts-per-leaf.png").read_bytes()[:4] == b"\x89PNG"


def test_key_facts_benchmark_needs_knowledge_rows(tmp_path):
    from finch.evaluate.run import evaluate

    data = tmp_path / "test.jsonl"
    data.write_text(
        json.dumps(
            {
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "metadata": {"leaf": "s", "kind": "skill"},
            }
        )
        + "\n"
    )
    with pytest.raises(UsageError, match="no knowledge question"):
        evaluate({"m": "unused"}, "key_facts", data, tmp_path / "out", tmp_path / "models")
    with pytest.raises(UsageError, match="needs --data"):
        evaluate({"m": "unused"}, "key_facts", None, tmp_path / "out", tmp_path / "models")
