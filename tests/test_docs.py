"""The README stays a front page and the documentation holds together: the README is short and
names the set-up commands, and every relative link of README.md and docs/*.md (anchor included)
leads somewhere that exists."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 150

#: Markdown inline links and images: [text](target) / ![alt](target "title").
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text):
    """The lines outside fenced code blocks (a link in a code sample is not a link)."""
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield line


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    slugs, seen = set(), {}
    for line in _prose_lines(path.read_text()):
        m = HEADING.match(line)
        if m:
            base = _slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            slugs.add(base if n == 0 else f"{base}-{n}")
    return slugs


def _relative_links(path):
    for line in _prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            yield target


def _documents():
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_a_short_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move reference material "
        "into docs/")


@pytest.mark.parametrize("command", ["make demo", "make test", "make test-fast"])
def test_readme_names_the_set_up_commands(command):
    text = README.read_text()
    # "make test" must stand on its own, not only as the start of "make test-fast"
    assert re.search(re.escape(command) + r"(?![\w-])", text), f"README.md does not name `{command}`"


def test_the_reference_lives_in_docs():
    names = {p.name for p in DOCS.glob("*.md")}
    for name in ("install.md", "cli.md", "configs.md", "pixel-convention.md",
                 "validation-and-ensemble.md", "motion.md", "troubleshooting.md"):
        assert name in names, f"docs/{name} is missing"
    readme_links = {Path(unquote(t.split("#", 1)[0])).name for t in _relative_links(README)}
    for name in ("install.md", "cli.md", "configs.md", "troubleshooting.md"):
        assert name in readme_links, f"README.md does not link docs/{name}"
    # no orphan: every page of docs/ is linked from the README or from another page
    linked = {(doc.parent / unquote(t.split("#", 1)[0])).resolve()
              for doc in _documents() for t in _relative_links(doc) if not t.startswith("#")}
    for page in DOCS.glob("*.md"):
        assert page.resolve() in linked, f"docs/{page.name} is linked from nowhere"


def test_every_relative_link_resolves():
    broken = []
    for doc in _documents():
        for target in _relative_links(doc):
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / unquote(file_part)).resolve() if file_part else doc
            where = f"{doc.relative_to(REPO)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: {file_part} does not exist")
            elif anchor and dest.suffix == ".md" and unquote(anchor) not in _anchors(dest):
                broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path):
    """The checker itself: a missing file and a missing anchor are found, code samples ignored."""
    doc = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A title: with `code`, and (more)\n")
    doc.write_text("[ok](there.md#a-title-with-code-and-more) [web](https://example.org/x)\n"
                   "```\n[sample](nowhere.md)\n```\n[gone](missing.md) [bad](there.md#nope)\n")
    assert list(_relative_links(doc)) == ["there.md#a-title-with-code-and-more", "missing.md",
                                          "there.md#nope"]
    assert _anchors(tmp_path / "there.md") == {"a-title-with-code-and-more"}
