"""Every stage of the pipelines through a scripted teacher over real HTTP: what it emits, each filter drops and
the report counts."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from finch.errors import FinchError, UsageError
from finch.sdg.generate import MCQ_TRIES
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir
from finch.taxonomy.seed_rows import seed_rows, split_seed_rows
from tests.sdg.helpers import (
    MARKERS,
    generate,
    generated_rows,
    held_out,
    journals,
    knowledge_held_out,
    rows,
    sample_leaves,
    seed_examples,
    shown_seed_count,
)
from tests.sdg.teacher import judged_item, words


def rejected_by_reason(report) -> Counter:
    total: Counter = Counter()
    for leaf in report["leaves"]:
        for stage in leaf["stages"]:
            total.update(stage["rejected"])
    return total


def stage(report, leaf_kind: str, name: str) -> dict:
    leaf = next(leaf for leaf in report["leaves"] if leaf["flavour"] == leaf_kind)
    return next(s for s in leaf["stages"] if s["stage"] == name)


def seed_copies(report) -> int:
    return sum(leaf["stages"][-1].get("seed_copies", 0) for leaf in report["leaves"])


def test_full_pipeline_filters_drop_what_they_must_and_the_report_counts_it(teachers, tmp_path):
    server = teachers(held_out=knowledge_held_out())
    out = tmp_path / "full"
    report = generate(server.url, out, pipeline="full", scale=2)
    emitted = server.emitted
    kinds = ("offtopic", "garbled", "seeddup", "short", "wrong", "long", "testdup")
    assert emitted["good"] and all(emitted[k] for k in kinds)

    # each kind of bad answer is dropped at its stage, with its reason
    reasons = rejected_by_reason(report)
    assert reasons["parse_error"] == emitted["short"] + emitted["mcq_malformed"]
    assert reasons["low_rating"] == emitted["offtopic"] + emitted["wrong"]
    assert reasons["unparseable_rating"] == emitted["garbled"]
    assert reasons["truncated"] == emitted["long"]
    assert reasons["matches_test"] == emitted["testdup"]  # a held-out seed question, though no prompt showed it
    # pairs asked for the document's key facts no kept answer states: one that states none, or adds a number the
    # excerpt does not state, is dropped
    assert emitted["cover_good"] and emitted["cover_nofact"] and emitted["cover_ungrounded"]
    assert reasons["no_missing_fact"] == emitted["cover_nofact"]
    assert reasons["ungrounded"] == emitted["cover_ungrounded"]
    total, before, after = stage(report, "knowledge", "cover")["facts"]  # the document's key facts some row states
    assert before < after < total
    # a copy of a shown seed example is training material: the first of each is kept and counted, repeats are not
    assert sum(server.copied.values()) == emitted["seeddup"] and len(server.copied) == seed_copies(report) > 0
    assert reasons["duplicate"] == emitted["seeddup"] - len(server.copied)
    assert {reason for reason, n in reasons.items() if n} <= {
        "parse_error",
        "low_rating",
        "unparseable_rating",
        "truncated",
        "matches_test",
        "duplicate",
        "unconfirmed",
        "no_missing_fact",
        "ungrounded",
    }

    train = generated_rows(out / "train.jsonl")
    assert len(train) == emitted["good"] + len(server.copied) + emitted["cover_good"]
    assert report["train"] == len(rows(out / "train.jsonl")) == len(train) + shown_seed_count(sample_leaves())
    assert set(server.copied) <= {r["messages"][0]["content"] for r in train}
    text = json.dumps(train)
    for marker in MARKERS:
        assert marker not in text

    # every leaf has train and test rows; test holds exactly the held-out seed examples, none of which is trained on
    # or was shown to the teacher
    leaves = {leaf.name: leaf for leaf in sample_leaves()}
    test = rows(out / "test.jsonl")
    test_set = [(leaf.name, e["user"], e["answer"]) for leaf in leaves.values() for e in held_out(leaf)]
    assert [(r["metadata"]["leaf"], r["messages"][0]["content"], r["messages"][1]["content"]) for r in test] == test_set
    trained = {r["messages"][0]["content"] for r in train}
    assert not trained & {r["messages"][0]["content"] for r in test}
    # what the teacher was shown, less the items its judges rate: those are its own writing (testdup items repeat a
    # held-out question on purpose)
    prompts = "\n".join(
        m["content"].replace(judged_item(m["content"]), "") if "Reply in the form" in m["content"] else m["content"]
        for body in server.requests
        for m in body["messages"]
    )
    for leaf in leaves.values():
        assert any(e["key"] in prompts for e in seed_examples(leaf) if e not in held_out(leaf)), leaf.name
        for example in held_out(leaf):
            assert example["key"] not in prompts, example
            # (a knowledge answer is a fact from the document, which the teacher does read)
            assert leaf.name.startswith("knowledge") or example["answer"] not in prompts, example
    # the quickstart's seed dataset holds out the same examples
    _, quickstart_test = split_seed_rows(seed_rows(check_taxonomy([sample_taxonomy_dir()])))
    quickstart_pairs = [(r["metadata"]["leaf"], r["messages"][1]["content"]) for r in quickstart_test]
    assert quickstart_pairs == [(leaf, answer) for leaf, _, answer in test_set]
    for entry in report["leaves"]:
        assert entry["status"] == "complete" and entry["train"] > 0 and entry["test"] > 0, entry
        # --scale is samples generated per seed example, in every pipeline; a knowledge leaf asks about every
        # passage of its document, which may be more
        generated = entry["stages"][0 if entry["kind"] == "skill" else 1]["generated"]
        if entry["kind"] == "skill":
            assert generated == 2 * leaves[entry["leaf"]].example_count
        else:
            assert generated >= 2 * leaves[entry["leaf"]].example_count
        per_leaf = rows(out / "leaves" / f"{entry['leaf'].replace('->', '.')}.train.jsonl")
        assert len(per_leaf) == entry["train"]
        for stage_stats in entry["stages"]:
            assert stage_stats["generated"] == stage_stats["kept"] + sum(stage_stats["rejected"].values())

    # the output format the training stage reads
    for row in train:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        meta = row["metadata"]
        assert meta["pipeline"] == "full" and meta["teacher"] == "scripted-teacher"
        assert meta["phase"] == ("knowledge" if meta["kind"] == "knowledge" else "skills")
        if meta.get("covers"):  # a pair for a missing key fact: checked by rules, not judged
            assert meta["kind"] == "knowledge" and meta["scores"] == {}
            assert all(fact in row["messages"][1]["content"] for fact in meta["covers"])
            continue
        expected = {"judge_faithfulness"} if meta["kind"] == "knowledge" else {"judge_instructions", "judge_responses"}
        assert set(meta["scores"]) == expected and min(meta["scores"].values()) >= 3
    phases = [r["metadata"]["phase"] for r in train]
    assert phases == sorted(phases)  # knowledge first, then skills
    grounded = [r for r in train if r["metadata"]["leaf"].endswith("order_details")]
    assert all("\n\nWhat does the passage say" in r["messages"][0]["content"] for r in grounded)

    # a question whose stated answer the teacher does not pick again from the excerpt is dropped, and counted
    mcq = rows(out / "knowledge_mcq.jsonl")
    assert (
        emitted["mcq_unconfirmed"]
        and stage(report, "knowledge", "mcq")["rejected"]["unconfirmed"] == emitted["mcq_unconfirmed"]
    )
    assert len(mcq) == emitted["mcq_good"] - emitted["mcq_unconfirmed"] == stage(report, "knowledge", "mcq")["kept"]
    assert not [q for q in mcq if int(q["question"].rsplit(" ", 1)[1].rstrip("?")) % 4 == 1]
    for question in mcq:  # the teacher wrote the right choice as B; the choices are shuffled
        assert len(question["choices"]) == 4 and question["context"]
        assert question["choices"][question["answer"]] == words(int(question["question"].split()[-1][:-1]), 2, 3)
    assert len({question["answer"] for question in mcq}) > 1
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert [p["name"] for p in recipe["phases"]] == ["knowledge", "skills"]
    assert json.loads((out / "report.json").read_text()) == report
    # an mcq call that read as nothing, or whose key the teacher did not confirm, was asked again, as a call of its
    # own (chunk.again, chunk.again.again, ...), until a confirmed question or MCQ_TRIES; the report counts them all
    [mcq_records] = [records for name, records in journals(out).items() if name.endswith("-mcq.jsonl")]
    [verdicts] = [records for name, records in journals(out).items() if name.endswith("-mcq-confirm.jsonl")]
    by_call, confirmed = {r["call"]: r for r in mcq_records}, {r["call"]: r["confirmed"] for r in verdicts}
    assert len(by_call) == len(mcq_records)  # no call asked twice

    def failed(call: str) -> bool:
        return "mcq" not in by_call[call] or not confirmed[call]

    chains = []
    for chunk in [c for c in by_call if not c.endswith(".again")]:
        chain = [chunk]
        while chain[-1] + ".again" in by_call:
            chain.append(chain[-1] + ".again")
        assert all(failed(call) for call in chain[:-1])  # asked again only after a miss
        assert not failed(chain[-1]) or len(chain) == MCQ_TRIES  # until a confirmed question, or the last try
        chains.append(chain)
    assert any(len(chain) > 2 for chain in chains)  # a retry's miss was asked again too
    assert stage(report, "knowledge", "mcq")["retries"] == sum(len(chain) - 1 for chain in chains)
    assert stage(report, "knowledge", "mcq")["generated"] == len(mcq_records)
    # a rejected answer is kept in the journal, so an empty leaf can be explained; the confirmations keep the letter
    confirm = {name: records for name, records in journals(out).items() if name.endswith("-confirm.jsonl")}
    assert [len(records) for records in confirm.values()] == [emitted["mcq_good"]]
    assert {r["confirmed"] for r in next(iter(confirm.values()))} == {True, False}
    records = [r for name, records in journals(out).items() if name not in confirm for r in records]
    assert all(("raw" in r) == bool(r["rejected"]) for r in records)
    assert any(r.get("raw") == "Looks fine to me!" for r in records)


def test_simple_pipeline_is_one_step_without_judges(teachers, tmp_path):
    server = teachers(held_out=knowledge_held_out())
    report = generate(server.url, tmp_path / "simple", pipeline="simple", scale=1)
    emitted = server.emitted
    assert len(server.requests) == sum(
        -(-leaf["target"] // (3 if leaf["flavour"] == "skills_grounded" else 4)) for leaf in report["leaves"]
    )
    # the prompts have a prefill, which an HTTP chat API cannot be given portably: the answer turn is the server's
    assert all(body["messages"][-1]["role"] == "user" for body in server.requests)
    reasons = rejected_by_reason(report)
    repeats = emitted["seeddup"] - len(server.copied)
    assert reasons == Counter(parse_error=emitted["short"], matches_test=emitted["testdup"], duplicate=repeats)
    assert emitted["testdup"] and len(server.copied) == seed_copies(report) > 0
    generated = sum(emitted.values()) - emitted["short"] - emitted["testdup"] - repeats
    assert report["train"] == generated + shown_seed_count(sample_leaves())
    for entry in report["leaves"]:
        assert [s["stage"] for s in entry["stages"]][-1] == "dedup" and len(entry["stages"]) == 2
        assert entry["train"] > 0
    grounded = [r for r in rows(tmp_path / "simple" / "train.jsonl") if r["metadata"]["leaf"].endswith("order_details")]
    assert grounded and all(r["messages"][0]["content"].count("\n\n") == 1 for r in grounded)


def test_rerun_of_a_finished_run_asks_the_teacher_nothing(teachers, tmp_path):
    server = teachers()
    generate(server.url, tmp_path / "d", scale=1)
    before = (tmp_path / "d" / "train.jsonl").read_bytes()
    asked = len(server.requests)
    generate(server.url, tmp_path / "d", scale=1)
    assert len(server.requests) == asked
    assert (tmp_path / "d" / "train.jsonl").read_bytes() == before


def test_rerun_with_other_settings_is_refused(teachers, tmp_path):
    server = teachers()
    generate(server.url, tmp_path / "d", scale=1)
    with pytest.raises(UsageError, match="scale 1 → 2"):
        generate(server.url, tmp_path / "d", scale=2)


def test_teacher_failure_keeps_partial_output_and_a_rerun_finishes_it(teachers, tmp_path):
    reference = teachers()
    generate(reference.url, tmp_path / "reference", scale=1)

    failing = teachers(fail_after=40)
    with pytest.raises(FinchError, match="gave up after 1 attempts.*kept the partial output.*rerun the same"):
        generate(failing.url, tmp_path / "d", scale=1)
    partial = json.loads((tmp_path / "d" / "report.json").read_text())
    assert not partial["complete"]
    done_before = journals(tmp_path / "d")
    assert sum(len(r) for r in done_before.values()) == 40  # every answer that came back is on disk

    working = teachers()
    generate(working.url, tmp_path / "d", scale=1)
    after = journals(tmp_path / "d")
    for name, records in done_before.items():
        assert after[name][: len(records)] == records  # nothing lost, nothing rewritten
    assert len(working.requests) == len(reference.requests) - 40  # finished calls are not asked again
    assert rows(tmp_path / "d" / "train.jsonl") == rows(tmp_path / "reference" / "train.jsonl")


def test_replay_rows_are_mixed_by_ratio_and_tagged(teachers, tmp_path):
    server = teachers()
    replay = tmp_path / "general.jsonl"
    replay.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
            + "\n"
            for i in range(5)
        )
    )
    report = generate(server.url, tmp_path / "d", scale=1, replay=replay, replay_ratio=0.5)
    train = rows(tmp_path / "d" / "train.jsonl")
    replayed = [r for r in train if r["metadata"]["leaf"] == "replay"]
    generated = [r for r in train if r["metadata"]["leaf"] != "replay"]
    for phase in ("knowledge", "skills"):
        n = sum(r["metadata"]["phase"] == phase for r in generated)
        assert sum(r["metadata"]["phase"] == phase for r in replayed) == round(0.5 * n)
    assert len(replayed) == report["replay"] > 0
    recipe = yaml.safe_load((tmp_path / "d" / "recipe.yaml").read_text())
    assert recipe["phases"][1]["sources"][1]["ratio"] == 0.5


def test_bad_replay_file_is_a_usage_error(teachers, tmp_path):
    server = teachers()
    replay = tmp_path / "bad.jsonl"
    replay.write_text('{"text": "no messages"}\n')
    with pytest.raises(UsageError, match="no rows with a `messages` list"):
        generate(server.url, tmp_path / "d", scale=1, replay=replay, replay_ratio=0.5)
