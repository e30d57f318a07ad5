"""Knowledge documents: markdown, plain text or PDF, from files beside the qna.yaml or from a git repo at a commit.

A git repo is fetched once into the cache (a bare repository per URL) and each commit is checked out once into
its own folder; later runs read the checkout and need no network. Patterns are globs confined to the repository
(or leaf) folder: no absolute paths, no '..', and no symlinks that point outside it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from finch.errors import FinchError
from finch.taxonomy.rules import TODO_PREFIX, pattern_problem
from finch.taxonomy.schema import Document

DOCUMENT_TYPES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".pdf": "pdf"}
MAX_DOCUMENT_BYTES = 20_000_000
LEAF_FILES = {"qna.yaml", "qna.yml", "attribution.txt"}  # never documents of a local-form leaf
GIT_TIMEOUT_S = 600
PLACEHOLDER = "document is still a placeholder"


@dataclass(frozen=True)
class SourceDocument:
    path: Path
    text: str
    kind: str  # "markdown", "text" or "pdf"
    pages: tuple[str, ...] = ()  # a PDF's text page by page (`text` joins them); chunks never span two pages

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class DocumentProblem:
    """Something wrong with a leaf's documents; `where` is the data path it is about (for its line number)."""

    message: str
    where: tuple
    rule: str = "document"


class _GitError(Exception):
    pass


def _git(args: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", **(env or {})}
    try:
        return subprocess.run(
            ["git", "-c", "protocol.ext.allow=never", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise _GitError("git is not installed; install git, or use --skip-documents") from None
    except subprocess.TimeoutExpired:
        raise _GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from None


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1].strip().rstrip(".") if lines else f"git exited with {result.returncode}"


class DocumentSource:
    """Resolves document folders for leaves; one instance per run shares fetched repos between leaves."""

    def __init__(self, cache_dir: Path | None):
        self.cache_dir = cache_dir
        self._checkouts: dict[tuple[str, str], Path | str] = {}  # (repo, commit) -> folder or error message

    def checkout(self, repo: str, commit: str) -> Path:
        """The folder holding `repo` at `commit`, fetching it once; raises FinchError when that is impossible."""
        if repo.startswith("-") or not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit):
            raise FinchError(f"refusing to fetch repo {repo!r} at commit {commit!r}")  # the rules explain why
        key = (repo, commit)
        if key not in self._checkouts:
            try:
                self._checkouts[key] = self._checkout(repo, commit)
            except (_GitError, OSError) as e:
                self._checkouts[key] = str(e)
        found = self._checkouts[key]
        if isinstance(found, str):
            raise FinchError(found)
        return found

    def _checkout(self, repo: str, commit: str) -> Path:
        if self.cache_dir is None:
            raise _GitError("no cache folder for git documents")
        digest = hashlib.sha256(repo.encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", repo.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1])[:40]
        bare = self.cache_dir / "repos" / f"{slug}-{digest}.git"
        trees = self.cache_dir / "trees" / f"{slug}-{digest}"
        if (trees / commit).is_dir():
            return trees / commit
        if not (bare / "HEAD").is_file():
            bare.mkdir(parents=True, exist_ok=True)
            result = _git(["init", "--bare", "--quiet", str(bare)])
            if result.returncode:
                raise _GitError(f"cannot create a git cache in {bare}: {_last_line(result)}")
        sha = self._resolve(bare, commit)
        if sha is None:
            shallow = _git(["--git-dir", str(bare), "fetch", "--quiet", "--depth", "1", repo, commit])
            sha = self._resolve(bare, commit) if shallow.returncode == 0 else None
            if sha is None:
                full = _git(["--git-dir", str(bare), "fetch", "--quiet", repo, "+refs/heads/*:refs/remotes/r/*"])
                if full.returncode:
                    raise _GitError(
                        f"cannot fetch {repo}: {_last_line(full)}. Check the URL and the network, or run with "
                        "--skip-documents to check the rest offline"
                    )
                sha = self._resolve(bare, commit)
                if sha is None:
                    raise _GitError(f"commit {commit} is not in {repo}: check document.commit")
        target = trees / sha
        if not target.is_dir():
            tmp = trees / f".tmp-{sha}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            index = trees / f".index-{os.getpid()}"
            result = _git(
                ["--git-dir", str(bare), "--work-tree", str(tmp), "checkout", "--force", sha, "--", "."],
                env={"GIT_INDEX_FILE": str(index)},
            )
            index.unlink(missing_ok=True)
            if result.returncode:
                shutil.rmtree(tmp, ignore_errors=True)
                raise _GitError(f"cannot check out {commit} of {repo}: {_last_line(result)}")
            try:
                tmp.rename(target)
            except OSError:  # another process got there first
                shutil.rmtree(tmp, ignore_errors=True)
        if sha != commit and not (trees / commit).exists():
            (trees / commit).symlink_to(sha)  # a short SHA finds the checkout without git next time
        return target

    @staticmethod
    def _resolve(bare: Path, commit: str) -> str | None:
        result = _git(["--git-dir", str(bare), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"])
        return result.stdout.strip() if result.returncode == 0 else None


def document_root(leaf_folder: Path, document: Document, source: DocumentSource) -> Path:
    """The folder that `document.patterns` are relative to (raises FinchError)."""
    if document.repo is not None:
        return source.checkout(document.repo, document.commit or "")
    if document.folder is not None:
        folder = Path(document.folder).expanduser()
        folder = folder if folder.is_absolute() else leaf_folder / folder
        if not folder.is_dir():
            raise FinchError(f"document folder {folder} does not exist")
        return folder
    return leaf_folder


def read_document(path: Path) -> SourceDocument | str:
    """The document, or why it cannot be used."""
    suffix = path.suffix.lower()
    kind = DOCUMENT_TYPES.get(suffix)
    if kind is None:
        return (
            f"{path.name}: unsupported document type '{suffix or '(none)'}'; finch reads markdown (.md), text (.txt) "
            "and PDF (.pdf)"
        )
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        return f"{path.name} is {size:,} bytes; documents over {MAX_DOCUMENT_BYTES:,} bytes are not read"
    if kind == "pdf":
        return _read_pdf(path)
    raw = path.read_bytes()
    if b"\x00" in raw:
        return f"{path.name} is a binary file, not {kind}"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return f"{path.name}:{line}: not UTF-8 text ({e.reason}); save it as UTF-8"
    if not text.strip():
        return f"{path.name} is empty"
    if text.lstrip().startswith(TODO_PREFIX):
        return f"{PLACEHOLDER}: {path.name} starts with {text.strip().splitlines()[0]!r}"
    return SourceDocument(path=path, text=text, kind=kind)


def _read_pdf(path: Path) -> SourceDocument | str:
    """A PDF's text layer, page by page (pypdf). A PDF without one is a scan: finch does no OCR itself."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        with _quiet_pypdf():
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                return f"{path.name} is encrypted; save an unencrypted copy (e.g. qpdf --decrypt) and use that"
            pages = tuple(page.extract_text() or "" for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as e:
        return f"{path.name}: not a readable PDF ({e}); export it again, or convert it to markdown"
    if not any(page.strip() for page in pages):
        return f"{path.name}: no extractable text; it looks scanned — run OCR first, e.g. ocrmypdf"
    return SourceDocument(path=path, text="\n\n".join(pages), kind="pdf", pages=pages)


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs every repaired oddity of a file as a warning; the one problem that matters is returned instead."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def collect_documents(
    leaf_folder: Path, document: Document, source: DocumentSource
) -> tuple[list[SourceDocument], list[DocumentProblem]]:
    """The leaf's documents and the problems found resolving them (never raises for a user problem)."""
    docs: list[SourceDocument] = []
    problems: list[DocumentProblem] = []
    try:
        root = document_root(leaf_folder, document, source)
    except FinchError as e:
        where = ("document", "repo") if document.repo is not None else ("document", "folder")
        return docs, [DocumentProblem(str(e), where, "document-fetch")]
    real_root = root.resolve()
    local = document.repo is None and document.folder is None
    seen: set[Path] = set()
    for k, pattern in enumerate(document.patterns):
        where = ("document", "patterns", k)
        if not pattern.strip() or pattern_problem(pattern):
            continue  # reported by the rules
        try:
            matches = sorted(p for p in root.glob(pattern) if p.is_file() or p.is_symlink())
        except (ValueError, NotImplementedError, OSError) as e:
            problems.append(DocumentProblem(f"pattern {pattern!r} cannot be used: {e}", where, "document-pattern"))
            continue
        if local:
            matches = [p for p in matches if p.name not in LEAF_FILES]
        if not matches:
            shown = "the leaf folder" if local else str(root)
            problems.append(
                DocumentProblem(f"pattern {pattern!r} matches no file in {shown}", where, "document-missing")
            )
            continue
        for match in matches:
            real = match.resolve()
            if not real.is_relative_to(real_root):
                problems.append(
                    DocumentProblem(
                        f"{match.relative_to(root)} is a symlink to {real}, outside the document folder; "
                        "documents must be inside it",
                        where,
                        "document-pattern",
                    )
                )
                continue
            if real in seen or not real.is_file():
                continue
            seen.add(real)
            doc = read_document(match)
            if isinstance(doc, str):
                rule = "todo" if doc.startswith(PLACEHOLDER) else "document-file"
                problems.append(DocumentProblem(doc, where, rule))
            else:
                docs.append(doc)
    return docs, problems


def load_documents(leaf_folder: Path, document: Document, source: DocumentSource) -> list[SourceDocument]:
    """The leaf's documents for later stages; raises FinchError naming the first problem."""
    docs, problems = collect_documents(leaf_folder, document, source)
    if problems:
        raise FinchError(f"{leaf_folder}: {problems[0].message}")
    return docs
