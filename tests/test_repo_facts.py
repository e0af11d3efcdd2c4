"""Provider facts live in the repository (issue 17, item 11).

Code and docs cite `docs/...md#anchor` (or the provider's own reference), never notes kept
outside the repository; and every in-repo anchor they cite exists.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "tests", "bench", "docs", "scripts", "README.md")
THIS = Path(__file__).resolve()

# Citations of the outside notes: their path, their file names, "digest …" references and their
# section numbering (§A3, §0.4, §D …). Our own "§" uses (issue 4 §9, architecture §3, 3GPP
# TS 23.038 §6.2.1.1) are numeric and stay allowed.
OUTSIDE = [
    re.compile(r"shared/protocols"),
    re.compile(r"(?<![\w/.-])(?:meta|other|line-viber)\.md\b"),
    re.compile(r"\bdigest(?:'s)?\s*[:(]?\s*(?:§|[A-F]\d{1,2}\b|[A-F]\b|other|meta)"),
    re.compile(r"\bDigest [A-FLVX]\d"),  # "Digest D1" opening a comment
    re.compile(r"\barchitecture §"),  # the outside design notes' sections
    re.compile(r"\(digest[\s:]|\b(?:the|a|per the) digest\b|\bdigest's\b"),
    re.compile(r"§\s*(?:0\.\d|[A-F]\d{0,2}\b)"),
    re.compile(r"(?<!\w)\([A-F]\d{1,2}\)"),  # a bare "(A4)", not a call like len(D3)
]

DOC_REF = re.compile(r"\bdocs/[\w./-]+?\.md(?:#[\w-]+)?")
MD_LINK = re.compile(r"\]\(([^)\s#]+\.md)?(#[\w-]+)?\)")


def _texts() -> list[tuple[Path, str]]:
    out = []
    for top in SCANNED:
        paths = [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*"))
        for path in paths:
            if not path.is_file() or path.resolve() == THIS or "__pycache__" in path.parts:
                continue
            try:
                out.append((path, path.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                continue  # images and other binaries
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    kept = "".join(
        c
        for c in text
        if c in " -_" or unicodedata.category(c)[0] in "LN"  # letters and digits
    )
    return kept.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not re.match(r"#{1,6} ", line):
            continue
        base = slug(re.sub(r"`", "", line.lstrip("#")))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_slug_follows_github() -> None:
    assert slug("Protocol facts") == "protocol-facts"
    assert slug("Batching, retries and order") == "batching-retries-and-order"
    assert slug("GSM-7 alphabet") == "gsm-7-alphabet"
    assert slug("Preview: POST /api/v1/sms/preview") == "preview-post-apiv1smspreview"


def test_nothing_cites_notes_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in _texts()
        for n, line in enumerate(text.splitlines(), 1)
        if any(p.search(line) for p in OUTSIDE)
    ]
    assert not hits, "cite docs/...md#anchor or the provider's reference instead:\n" + "\n".join(
        hits
    )


def test_guard_catches_the_old_forms() -> None:
    # The guard must be able to fail: each old citation form is caught, our own forms are not.
    old = [
        "(digest A6)",
        "digest other.md §C5",
        "shared/protocols/meta.md §A2",
        "(§B3)",
        "digest §0.4",
        "the digest marks it unconfirmed",
        "needs the bearer token (A4).",
    ]
    ours = [
        "(docs/channels/whatsapp.md#throughput-and-pair-limits)",
        "(issue 4 §9)",
        "hashlib.sha256(data).hexdigest()",
        "3GPP TS 23.038 §6.2.1.1",
        "docs/providers/graph-api.md#graph-errors",
        'ids=[f"d3-{i}" for i in range(len(D3))]',
    ]
    assert all(any(p.search(s) for p in OUTSIDE) for s in old)
    assert not any(p.search(s) for s in ours for p in OUTSIDE)


def test_cited_docs_and_anchors_exist() -> None:
    missing = []
    cache: dict[Path, set[str]] = {}

    def check(where: str, target: Path, anchor: str | None) -> None:
        if not target.is_file():
            missing.append(f"{where}: no file {target.relative_to(ROOT)}")
            return
        if anchor:
            names = cache.setdefault(target, anchors(target))
            if anchor not in names:
                missing.append(f"{where}: no heading #{anchor} in {target.relative_to(ROOT)}")

    cited = 0
    for path, text in _texts():
        for n, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{n}"
            for ref in DOC_REF.findall(line):
                file, _, anchor = ref.partition("#")
                check(where, ROOT / file, anchor or None)
                cited += 1
            if path.suffix == ".md":
                for file, anchor in MD_LINK.findall(line):
                    target = (path.parent / file).resolve() if file else path
                    if ROOT in target.parents and (file or anchor):
                        check(where, target, anchor.lstrip("#") or None)
    assert cited > 100  # the code does cite the facts; a broken regex must not pass silently
    assert not missing, "\n".join(missing)


# `docs/operations.md, "Sizing the lanes"`: a citation by section title (a prefix of a heading).
SECTION_REF = re.compile(r"\b(docs/[\w/.-]+\.md)[,:]? \(?\"([^\"]{3,80})\"")


def _headings(md: Path) -> list[str]:
    return [
        re.sub(r"[`*]", "", line.lstrip("#").strip()).lower()
        for line in md.read_text(encoding="utf-8").splitlines()
        if re.match(r"#{1,6} ", line)
    ]


def test_cited_section_titles_exist() -> None:
    missing, cited = [], 0
    cache: dict[str, list[str]] = {}
    for path, text in _texts():
        for n, line in enumerate(text.splitlines(), 1):
            for file, title in SECTION_REF.findall(line):
                cited += 1
                target = ROOT / file
                heads = cache.setdefault(file, _headings(target) if target.is_file() else [])
                wanted = re.sub(r"[`*]", "", title).lower()
                if not any(h.startswith(wanted) for h in heads):
                    missing.append(f"{path.relative_to(ROOT)}:{n}: no section {title!r} in {file}")
    assert cited > 40  # the code does cite sections by title; a broken regex must not pass
    assert not missing, "\n".join(missing)


def test_code_says_what_is_undocumented_in_its_own_words() -> None:
    """The outside notes mark facts verified / stated / unconfirmed; code comments carried that
    marking ("unconfirmed", "vector A-B") without a reference. Code says what the provider does
    not document and cites docs/ (a docs anchor may still contain the word)."""
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path, text in _texts()
        if path.is_relative_to(ROOT / "src")
        for n, line in enumerate(text.splitlines(), 1)
        if re.search(r"\bunconfirmed\b|\bvector [A-F]-[A-F]\b", DOC_REF.sub("", line))
    ]
    assert found == []


# Docs that name code: every `path` and `dotted.module.name` they put in backticks must exist
# (issue 17: "docs/architecture.md is true sentence by sentence" starts with naming real code).
CODE_DOCS = (
    "docs/architecture.md",
    "docs/adding-a-channel.md",
    "docs/operations.md",
    "docs/security.md",
)
PKG = ROOT / "src" / "tidings"
SPAN = re.compile(r"`([^`\n]+)`")
PATHLIKE = re.compile(r"[\w.-]+(?:/[\w.-]+)*/?(?:(?:\.|::)\w+)?(?:\(\))?")
FILE = re.compile(r".*\.(?:py|js|md|css|json|toml|svg|lua)$")
DOTTED = re.compile(r"[a-z_]+(?:\.[A-Za-z_]\w*)+(?:\(\))?")
BASES = (ROOT, ROOT / "src", PKG, PKG / "web", PKG / "web" / "static")


def _defines(module: Path, name: str) -> bool:
    """`name` is a function, class, method or module-level assignment of `module`."""
    text = module.read_text(encoding="utf-8")
    return bool(
        re.search(rf"^\s*(?:async def|def|class) {name}\b|^{name}\s*[:=]", text, re.MULTILINE)
    )


def _resolve_module(parts: list[str]) -> tuple[Path | None, list[str]]:
    """Walk `parts` down src/tidings: the module file reached and the names left after it."""
    here = PKG
    for i, part in enumerate(parts):
        if (here / f"{part}.py").is_file():
            return here / f"{part}.py", parts[i + 1 :]
        if not (here / part).is_dir():
            return None, parts[i:]
        here = here / part
    init = here / "__init__.py"
    return (init if init.is_file() else None), []


def _path_problems(where: str, span: str) -> list[str] | None:
    path, name = span.removesuffix("()"), None
    if "::" in path:
        path, _, name = path.partition("::")  # `ingest/messages.py::apply_customer_rows`
    elif not FILE.match(path) and not path.endswith("/") and "." in path.rpartition("/")[2]:
        path, _, name = path.rpartition(".")  # `channels/optional.MulticastSender`
    path = path.rstrip("/")
    first = path.split("/")[0]
    bare = "/" in path and not FILE.match(path) and name is None and not span.endswith("/")
    if bare and first not in ("bench", "tests", "scripts", "src"):
        return None  # `media/get`, `application/octet-stream`: an API or a type, not code
    if ("/" in path or not FILE.match(path)) and not any((b / first).exists() for b in BASES):
        return None  # `data/`, `10.20.0.0/16`: not a path in the repository
    found = [
        candidate
        for base in BASES
        for candidate in (base / path, base / f"{path}.py", base / path / "__init__.py")
        if candidate.exists()
    ]
    if not found:
        return [f"{where}: no file or folder {path}"]
    if name and not any(p.is_file() and _defines(p, name) for p in found):
        return [f"{where}: {path} defines no {name}"]
    return []


def code_reference_problems(where: str, span: str) -> list[str] | None:
    """What is wrong with one backticked span of a doc that names code (None: it names none —
    prose, commands, settings, URL paths)."""
    span = span.strip()
    if any(c in span for c in "<>{}*$ =") or span.startswith(("/", "http", ".")):
        return None  # placeholders, globs, commands, settings and URL paths
    if re.search(r"\.(?:com|net|org|io|dev)$", span):
        return None  # a host name (`api.twilio.com`), not a module
    if PATHLIKE.fullmatch(span) and ("/" in span or FILE.match(span)):
        return _path_problems(where, span)
    top = span.split(".")[0]
    if DOTTED.fullmatch(span) and ((PKG / top).is_dir() or (PKG / f"{top}.py").is_file()):
        module, names = _resolve_module(span.removesuffix("()").split("."))
        if module is None:
            return [f"{where}: no module for {span}"]
        for name in names[:2]:  # a module's name, and a class's method
            if not _defines(module, name):
                return [f"{where}: {module.relative_to(ROOT)} defines no {name} ({span})"]
        return []
    return None


def test_docs_name_only_code_that_exists() -> None:
    problems, checked = [], 0
    for doc in CODE_DOCS:
        for n, line in enumerate((ROOT / doc).read_text(encoding="utf-8").splitlines(), 1):
            for span in SPAN.findall(line):
                found = code_reference_problems(f"{doc}:{n}", span)
                if found is not None:
                    problems += found
                    checked += 1
    assert checked > 250  # the docs do name code; a broken pattern must not pass silently
    assert not problems, "\n".join(problems)


def test_code_reference_guard_can_fail() -> None:
    gone = [
        "api/meta.py",
        "actions/reply_policy.py",
        "delivery/webhooks.py",
        "tidings/timers.py",
        "channels/multicast.MulticastRecipient",
        "ingest/messages.py::apply_all_rows",
        "workers.registry.NO_SUCH_SET",
        "actions.gate.decide_everything",
        "storage.nowhere",
    ]
    kept = [
        "actions/gate.py",
        "workers/registry.py",
        "channels/optional.MulticastSender",
        "channels/meta_common.timestamp",
        "ingest/messages.py::apply_customer_rows",
        "workers.registry.WORKER_SETS",
        "domain.enums.Queue",
        "inbox/state.js",
        "message.updated",
        "api.twilio.com",
        "TIDINGS_WORKERS=delivery",
    ]
    assert all(code_reference_problems("x", s) for s in gone)
    assert not [s for s in kept[:-3] if code_reference_problems("x", s) != []]
    assert [code_reference_problems("x", s) for s in kept[-3:]] == [None] * 3  # not code


ISSUE_REF = re.compile(r"\bissues? ?#?\d+", re.IGNORECASE)


def test_product_code_does_not_cite_the_issue_tracker() -> None:
    # The tracker is outside the repository: code says what and why itself and cites docs/.
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in _texts()
        if path.is_relative_to(ROOT / "src")
        for n, line in enumerate(text.splitlines(), 1)
        if ISSUE_REF.search(line)
    ]
    assert not hits, "say it in the code or cite docs/ instead:\n" + "\n".join(hits)
    assert ISSUE_REF.search("(issue #15, item 14)") and ISSUE_REF.search("Issue 18 items 4")
    assert not ISSUE_REF.search("an issue with the provider")
