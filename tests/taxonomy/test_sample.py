"""The sample taxonomy shipped in the package: it checks clean and its facts hold together."""

from __future__ import annotations

import re

from finch.taxonomy import Knowledge, Skill, check_taxonomy, sample_taxonomy_dir


def test_sample_checks_clean_with_documents(tmp_path):
    report = check_taxonomy([sample_taxonomy_dir()], documents_cache=tmp_path / "documents")
    assert [p.format(leaf.path) for leaf in report.leaves for p in leaf.problems] == []
    assert report.ok
    names = sorted(leaf.name for leaf in report.leaves)
    assert names == [
        "compositional_skills->extraction->order_details",
        "compositional_skills->formatting->iso_dates",
        "knowledge->products->kestrel_vane_k230",
    ]


def test_sample_has_one_knowledge_one_freeform_one_grounded_leaf(tmp_path):
    report = check_taxonomy([sample_taxonomy_dir()], documents_cache=tmp_path)
    by_name = {leaf.name.rsplit("->", 1)[-1]: leaf for leaf in report.leaves}
    knowledge = by_name["kestrel_vane_k230"]
    assert isinstance(knowledge.leaf, Knowledge)
    assert len(knowledge.leaf.seed_examples) >= 5
    assert all(len(e.questions_and_answers) >= 3 for e in knowledge.leaf.seed_examples)
    [document] = knowledge.documents
    assert document.kind == "markdown" and document.words >= 1500
    freeform, grounded = by_name["iso_dates"].leaf, by_name["order_details"].leaf
    assert isinstance(freeform, Skill) and not freeform.grounded and len(freeform.seed_examples) >= 5
    assert isinstance(grounded, Skill) and grounded.grounded and len(grounded.seed_examples) >= 5
    assert all(e.context for e in grounded.seed_examples)


def test_sample_knowledge_answers_are_backed_by_the_document(tmp_path):
    """Every number in an answer appears in the manual, so right and wrong answers can be told apart."""
    report = check_taxonomy([sample_taxonomy_dir()], documents_cache=tmp_path)
    [leaf] = [r for r in report.leaves if isinstance(r.leaf, Knowledge)]
    text = leaf.documents[0].text
    numbers = set(re.findall(r"\d+(?:\.\d+)?", text))
    for example in leaf.leaf.seed_examples:
        for pair in example.questions_and_answers:
            for number in re.findall(r"\d+(?:\.\d+)?", pair.answer):
                assert number in numbers, (number, pair.answer)
        for number in re.findall(r"\d+(?:\.\d+)?", example.context):
            assert number in numbers, (number, example.context[:60])
