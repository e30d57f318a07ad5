"""PDF knowledge documents: the sample leaf with its manual as a PDF made here checks clean, its chunks stay within
a page and say which; a PDF with no text layer (a scan) is one clear error."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate

from finch.sdg.chunking import approximate_tokens
from finch.sdg.generate import GenerateOptions, plan_leaf
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir
from tests.conftest import run_finch

LEAF = Path("knowledge/products/kestrel_vane_k230")
MANUAL = "kestrel_vane_k230"


def write_pdf(markdown: str, path: Path) -> Path:
    """The manual typeset as a PDF, a paragraph per block: several pages with a real text layer."""
    style = getSampleStyleSheet()["BodyText"]
    blocks = [escape(" ".join(block.split())) for block in markdown.split("\n\n") if block.strip()]
    SimpleDocTemplate(str(path), pagesize=A4).build([Paragraph(block, style) for block in blocks])
    return path


def write_scan(path: Path) -> Path:
    """What a scanner gives: a page of pixels (here a drawn rectangle), no text."""
    page = canvas.Canvas(str(path), pagesize=A4)
    page.rect(72, 72, 400, 600, fill=1)
    page.showPage()
    page.save()
    return path


def pdf_taxonomy(tmp_path: Path, make_pdf) -> Path:
    """The sample taxonomy with the knowledge leaf's manual replaced by a PDF of it."""
    taxonomy = shutil.copytree(sample_taxonomy_dir(), tmp_path / "taxonomy")
    leaf = taxonomy / LEAF
    markdown = leaf / f"{MANUAL}.md"
    make_pdf(markdown.read_text(encoding="utf-8"), leaf / f"{MANUAL}.pdf")
    markdown.unlink()
    qna = leaf / "qna.yaml"
    qna.write_text(qna.read_text(encoding="utf-8").replace(f"- {MANUAL}.md", f"- {MANUAL}.pdf"), encoding="utf-8")
    return taxonomy


def test_a_pdf_manual_checks_clean_and_chunks_page_by_page(tmp_path, finch_home):
    taxonomy = pdf_taxonomy(tmp_path, write_pdf)
    result = run_finch("taxonomy", "check", str(taxonomy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and "checked 3 leaves: all valid" in result.stderr

    [leaf] = check_taxonomy([taxonomy / LEAF]).leaves
    [document] = leaf.documents
    assert document.kind == "pdf" and len(document.pages) >= 3
    assert "14 September 2021" in " ".join(document.text.split())  # a fact of the manual's first section

    plan = plan_leaf(leaf, GenerateOptions(output=tmp_path / "ds", chunk_tokens=200), approximate_tokens)
    chunks = {(s["page"], s["chunk"]) for s in plan.sources}
    assert {s["document"] for s in plan.sources} == {f"{MANUAL}.pdf"}
    assert {page for page, _ in chunks} == set(range(1, len(document.pages) + 1))
    for page, chunk in chunks:  # every chunk is text of the one page it names
        assert " ".join(chunk.split()) in " ".join(document.pages[page - 1].split()), (page, chunk[:80])


def test_a_scanned_pdf_is_one_clear_error(tmp_path, finch_home):
    taxonomy = pdf_taxonomy(tmp_path, lambda _, path: write_scan(path))
    result = run_finch("taxonomy", "check", str(taxonomy))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = [line for line in result.stdout.splitlines() if "error:" in line]
    assert line.startswith(str(taxonomy / LEAF / "qna.yaml"))
    assert f"{MANUAL}.pdf: no extractable text; it looks scanned — run OCR first, e.g. ocrmypdf" in line


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"%PDF-1.4\n%broken\n", "not a readable PDF"), (b"", "not a readable PDF")],
)
def test_an_unreadable_pdf_says_so(tmp_path, content, reason):
    from finch.taxonomy.documents import read_document

    path = tmp_path / "manual.pdf"
    path.write_bytes(content)
    problem = read_document(path)
    assert isinstance(problem, str) and problem.startswith(f"manual.pdf: {reason}")
