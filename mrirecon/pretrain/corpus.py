"""Build the English pretraining corpus from documentation shipped in Debian packages.

(Over 400 lines on purpose: one pipeline, package list to provenance record, read top to bottom.)

``python -m mrirecon.pretrain.corpus --out corpus`` downloads the packages of :data:`SOURCES` with
``apt-get download`` (no installation), reads their documentation files straight from the ``.deb``,
strips HTML / POD markup, removes boilerplate lines and exact / near-duplicate documents, splits
train / held-out by document and writes ``corpus.jsonl.xz`` (one JSON object a line: ``source``,
``path``, ``split``, ``text``) with ``provenance.json``. ``--vocab N`` then trains the byte-level BPE
tokenizer on the train split (``tokenizer.json``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import re
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..io.files import file_sha256, write_bytes_atomically


@dataclass(frozen=True)
class Source:
    """One Debian package and the documentation files taken from it."""

    package: str
    licence: str
    include: str  # regex on the member path (after stripping a trailing .gz)
    kind: str  # html | pod | text
    exclude: str = r"$^"


SOURCES = (
    Source("python3.11-doc", "PSF-2.0", r"/usr/share/doc/python3\.11/html/_sources/.*\.txt$", "text"),
    Source("postgresql-doc-15", "PostgreSQL", r"/usr/share/doc/postgresql-doc-15/html/.*\.html$", "html"),
    Source(
        "python-django-doc",
        "BSD-3-Clause",
        r"/usr/share/doc/python-django-doc/html/.*\.html$",
        "html",
        r"/(genindex|py-modindex|search)\.html$|/_modules/",
    ),
    Source(
        "python-sqlalchemy-doc",
        "MIT",
        r"/usr/share/doc/python-sqlalchemy-doc/html/_sources/.*\.(rst\.)?txt$"
        r"|/usr/share/doc/python-sqlalchemy-doc/.*\.rst$",
        "text",
    ),
    Source(
        "sqlite3-doc",
        "public-domain",
        r"/usr/share/doc/sqlite3/.*\.html$",
        "html",
        r"/(fileio|releaselog/|changes|chronology|keyword_index|doclist)",
    ),
    Source("perl-doc", "GPL-1.0+ or Artistic-1.0", r"/usr/share/perl/.*\.pod$|/usr/lib/.*\.pod$", "pod"),
    Source("git-doc", "GPL-2.0", r"/usr/share/doc/git-doc/.*\.txt$", "text", r"/RelNotes/"),
    Source(
        "debian-handbook", "GPL-2.0+ or CC-BY-SA-3.0", r"/usr/share/doc/debian-handbook/html/en-US/.*\.html$", "html"
    ),
    Source("debian-reference-en", "GPL-2.0+", r"/usr/share/debian-reference/.*\.en\.html$", "html"),
    Source("python-sklearn-doc", "BSD-3-Clause", r"/usr/share/doc/python-sklearn-doc/html/.*_sources/.*\.txt$", "text"),
    Source("python-sympy-doc", "BSD-3-Clause", r"/usr/share/doc/python-sympy-doc/html/_sources/.*\.txt$", "text"),
    Source("python-flask-doc", "BSD-3-Clause", r"/usr/share/doc/python-flask-doc/html/_sources/.*\.txt$", "text"),
    Source("gnu-standards", "GFDL-1.3+ (no invariant sections)", r"/usr/share/doc/gnu-standards/.*\.html$", "html"),
)

SKIP_TAGS = {"script", "style", "head", "nav", "footer", "noscript", "svg", "button", "form"}
SKIP_CLASSES = {
    "sphinxsidebar",
    "related",
    "headerlink",
    "footer",
    "navheader",
    "navfooter",
    "toc",
    "sidebar",
    "menu",
    "breadcrumbs",
    "rel-links",
    "nav",
}
BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "dt",
    "dd",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "table",
    "blockquote",
    "section",
    "ul",
    "ol",
    "dl",
    "hr",
    "title",
    "td",
    "th",
    "article",
}
VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}
MIN_DOC_CHARS = 300
MIN_LINE_CHARS = 30  # lines shorter than this never count as duplicates (blank, "}", "Example:", ...)


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page: skips scripts, styles and navigation, one line per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, skipping)
        self.pre = 0

    @property
    def skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        if tag in VOID_TAGS:
            return
        classes = set((dict(attrs).get("class") or "").split())
        skip = self.skipping or tag in SKIP_TAGS or bool(classes & SKIP_CLASSES)
        self.stack.append((tag, skip))
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        # Pop to the matching tag (pages are not always well nested); ignore a stray end tag.
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        self.pre -= tag == "pre" and self.pre > 0
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Visible text of ``html`` (block elements become lines)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


_POD_CODE = re.compile(r"[A-Z]<<+\s(.*?)\s>>+|[A-Z]<([^<>]*)>", re.S)
_POD_ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}


def pod_to_text(pod: str) -> str:
    """Perl POD to plain text: headings kept, other commands dropped, formatting codes unwrapped."""
    out = []
    for line in pod.splitlines():
        if line.startswith("="):
            cmd, _, rest = line.partition(" ")
            out.append(rest if cmd.startswith(("=head", "=item")) else "")
        else:
            out.append(line)
    text = "\n".join(out)

    def unwrap(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        code = m.group(0)[0]
        if code == "E":
            return _POD_ENTITIES.get(inner, chr(int(inner)) if inner.isdigit() else "")
        if code in "XZ":
            return ""
        if code == "L":
            return inner.split("|", 1)[0] if "|" in inner else inner.split("/")[-1].strip('"')
        return inner

    for _ in range(3):  # nested codes, innermost first
        text = _POD_CODE.sub(unwrap, text)
    return text


_DECORATION = re.compile(r"^\s*([-=~^*#+_.:`'\"])\1{3,}\s*$")


def normalise(text: str) -> str:
    """Trailing spaces off, decoration lines (``=====``) dropped, at most one blank line in a row."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\xa0", " ").split("\n")]
    lines = [ln for ln in lines if not _DECORATION.match(ln)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def to_text(raw: str, kind: str) -> str:
    if kind == "html":
        raw = html_to_text(raw)
    elif kind == "pod":
        raw = pod_to_text(raw)
    elif kind != "text":
        raise ValueError(f"unknown document kind {kind!r}")
    return normalise(raw)


def line_key(line: str) -> str | None:
    """Hash of a line for duplicate detection (case and spacing ignored); None for short lines."""
    norm = " ".join(line.lower().split())
    if len(norm) < MIN_LINE_CHARS:
        return None
    return hashlib.blake2b(norm.encode(), digest_size=8).hexdigest()


@dataclass
class Document:
    source: str
    path: str
    text: str


def deduplicate(
    docs: list[Document], boilerplate_docs: int = 20, near_dup: float = 0.8
) -> tuple[list[Document], dict[str, int]]:
    """Remove boilerplate lines, exact duplicates and near-duplicate documents, in input order.

    - A long line found in ``boilerplate_docs`` or more documents (page headers, licence footers) is removed
      from every document.
    - A document whose text (normalised) equals an earlier one is dropped.
    - A document with at least ``near_dup`` of its long lines already seen in earlier kept documents is dropped.
    Returns the kept documents and counts of what was removed.
    """
    doc_freq: Counter[str] = Counter()
    for d in docs:
        doc_freq.update({k for k in map(line_key, d.text.split("\n")) if k})
    boiler = {k for k, n in doc_freq.items() if n >= boilerplate_docs}
    seen_lines: set[str] = set()
    seen_docs: set[str] = set()
    kept: list[Document] = []
    stats = Counter(boilerplate_lines=0, exact_duplicates=0, near_duplicates=0, too_short=0)
    for d in docs:
        lines = []
        for ln in d.text.split("\n"):
            if line_key(ln) in boiler:
                stats["boilerplate_lines"] += 1
            else:
                lines.append(ln)
        text = normalise("\n".join(lines))
        if len(text) < MIN_DOC_CHARS:
            stats["too_short"] += 1
            continue
        digest = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
        if digest in seen_docs:
            stats["exact_duplicates"] += 1
            continue
        keys = {k for k in map(line_key, text.split("\n")) if k}
        if keys and len(keys & seen_lines) >= near_dup * len(keys):
            stats["near_duplicates"] += 1
            continue
        seen_docs.add(digest)
        seen_lines |= keys
        kept.append(Document(d.source, d.path, text))
    return kept, dict(stats)


def split_of(doc: Document, heldout_percent: float) -> str:
    """Deterministic split by document identity (source and path), independent of the other documents."""
    h = int(hashlib.sha256(f"{doc.source}:{doc.path}".encode()).hexdigest()[:8], 16)
    return "heldout" if h % 10000 < heldout_percent * 100 else "train"


def fetch(packages: Iterable[str], cache: Path) -> dict[str, Path]:
    """``apt-get download`` the packages into ``cache`` (skipping ones already there); package -> .deb."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {p: next(iter(sorted(cache.glob(f"{p}_*.deb"))), None) for p in packages}
    missing = [p for p, f in found.items() if f is None]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=cache, check=True)
    debs = {p: next(iter(sorted(cache.glob(f"{p}_*.deb"))), None) for p in packages}
    for p, f in debs.items():
        if f is None:
            raise FileNotFoundError(f"{cache}: apt-get download left no .deb for {p}")
    return debs


def read_deb(deb: Path, source: Source) -> Iterator[Document]:
    """The documents of ``source`` inside ``deb`` (read from its data archive with ``dpkg-deb``)."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    include, exclude = re.compile(source.include), re.compile(source.exclude)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if not member.isfile():
                continue
            path = member.name.lstrip(".")
            name = path.removesuffix(".gz")
            if not include.search(name) or exclude.search(name):
                continue
            raw = tar.extractfile(member).read()
            if path.endswith(".gz"):
                raw = gzip.decompress(raw)
            text = to_text(raw.decode("utf-8", errors="replace"), source.kind)
            if len(text) >= MIN_DOC_CHARS:
                yield Document(source.package, name, text)


def write_corpus(docs: list[Document], heldout_percent: float, path: Path) -> dict[str, dict[str, int]]:
    """Write ``docs`` as xz-compressed JSON lines with their split; returns per-split document/char counts."""
    lines, counts = [], {"train": Counter(), "heldout": Counter()}
    for d in docs:
        split = split_of(d, heldout_percent)
        counts[split].update(documents=1, chars=len(d.text), bytes=len(d.text.encode()))
        lines.append(json.dumps({"source": d.source, "path": d.path, "split": split, "text": d.text}))
    blob = lzma.compress(("\n".join(lines) + "\n").encode(), preset=9 | lzma.PRESET_EXTREME)
    write_bytes_atomically(path, blob)
    return {k: dict(v) for k, v in counts.items()}


def read_corpus(path: str | Path, split: str | None = None) -> Iterator[dict[str, str]]:
    """Records of a ``corpus.jsonl.xz`` (optionally one split only)."""
    try:
        with lzma.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {n} is not JSON ({e})") from e
                if split is None or rec["split"] == split:
                    yield rec
    except (lzma.LZMAError, EOFError) as e:
        raise ValueError(f"{path}: not a readable xz file ({e})") from e


def build(out: Path, cache: Path, heldout_percent: float = 2.0, sources: tuple[Source, ...] = SOURCES) -> dict:
    """Fetch, extract, clean, deduplicate, split and write the corpus; returns the provenance record."""
    out.mkdir(parents=True, exist_ok=True)
    debs = fetch([s.package for s in sources], cache)
    docs, per_source = [], {}
    for s in sources:
        found = list(read_deb(debs[s.package], s))
        print(f"{s.package}: {len(found)} documents, {sum(len(d.text) for d in found) / 1e6:.1f} M chars", flush=True)
        docs.extend(found)
        per_source[s.package] = {
            **asdict(s),
            "deb": debs[s.package].name,
            "deb_sha256": file_sha256(debs[s.package]),
            "documents_extracted": len(found),
        }
    kept, stats = deduplicate(docs)
    for s in sources:
        ds = [d for d in kept if d.source == s.package]
        per_source[s.package].update(documents_kept=len(ds), chars_kept=sum(len(d.text) for d in ds))
    splits = write_corpus(kept, heldout_percent, out / "corpus.jsonl.xz")
    record = {
        "file": "corpus.jsonl.xz",
        "sha256": file_sha256(out / "corpus.jsonl.xz"),
        "compressed_bytes": (out / "corpus.jsonl.xz").stat().st_size,
        "heldout_percent": heldout_percent,
        "splits": splits,
        "dedup": stats,
        "sources": per_source,
    }
    write_bytes_atomically(out / "provenance.json", (json.dumps(record, indent=2) + "\n").encode())
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mrirecon.pretrain.corpus", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("corpus"), help="output folder (default: corpus)")
    ap.add_argument("--cache", type=Path, default=None, help="folder of downloaded .deb files (default: OUT/debs)")
    ap.add_argument("--heldout-percent", type=float, default=2.0, help="share of documents held out (default 2)")
    ap.add_argument("--vocab", type=int, default=8192, help="train a byte-level BPE tokenizer of this size (0: no)")
    args = ap.parse_args(argv)
    try:
        rec = build(args.out, args.cache or args.out / "debs", args.heldout_percent)
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as e:
        print(f"corpus: {e}", file=sys.stderr)
        return 1
    tr, ho = rec["splits"]["train"], rec["splits"]["heldout"]
    print(
        f"wrote {args.out / rec['file']} ({rec['compressed_bytes'] / 1e6:.1f} MB): train {tr['documents']} documents "
        f"{tr['bytes'] / 1e6:.1f} MB, held-out {ho['documents']} documents {ho['bytes'] / 1e6:.2f} MB; {rec['dedup']}"
    )
    if args.vocab:
        from .tokenizer import train_tokenizer

        tok = train_tokenizer((r["text"] for r in read_corpus(args.out / rec["file"], "train")), args.vocab)
        tok.save(str(args.out / "tokenizer.json"))
        print(f"wrote {args.out / 'tokenizer.json'} (vocabulary {tok.get_vocab_size()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
