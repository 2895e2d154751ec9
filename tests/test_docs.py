"""The documentation: every relative link resolves, and docs/runfolder.md is what
normbench/store/runfolder.py renders (so the run-folder page cannot drift from the contract)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

# the pages checked: the front door, the manual, and the indexes beside the results
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "results" / "README.md", REPO / "benchmarks" / "README.md"]
)

_FENCE = re.compile(r"^(```|~~~)")
_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(_CODE.sub("", line))
    return lines


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens,
    -1, -2, ... on repeats."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def dead_links(page: Path, root: Path = REPO) -> list[str]:
    """Relative links (and images) of a Markdown page whose file, or heading anchor in a
    Markdown file, does not exist."""
    dead = []
    text = page.read_text(encoding="utf-8")
    for number, line in enumerate(_prose(text), 1):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                dead.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where.read_text(encoding="utf-8")):
                dead.append(f"{page.relative_to(root)}: {target} (no heading #{anchor} in {where.name})")
    return dead


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert dead_links(page) == []


def test_dead_links_are_found(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Repeat\n\n## Repeat\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-with-code) [ok](there.md#repeat-1) [web](https://example.org/x)\n"
        "[gone](missing.md) ![gone](img/none.png) [bad anchor](there.md#nowhere)\n"
        "`[in code](nope.md)`\n```\n[fenced](nope.md)\n```\n"
    )
    dead = [d.split(": ", 1)[1] for d in dead_links(page, root=tmp_path)]
    assert dead == ["missing.md (no such file)", "img/none.png (no such file)",
                    "there.md#nowhere (no heading #nowhere in there.md)"]


def test_runfolder_doc_is_rendered_from_runfolder():
    from normbench.store import runfolder

    committed = (REPO / "docs" / "runfolder.md").read_text(encoding="utf-8")
    assert committed == runfolder.describe_markdown(), (
        f"docs/runfolder.md differs from normbench/store/runfolder.py's tables; regenerate it: {runfolder.DOC_COMMAND}"
    )


def test_runfolder_doc_describes_every_name():
    from normbench.store import runfolder

    doc = runfolder.describe_markdown()
    for table in (runfolder.SUMMARY_KEYS, runfolder.HISTORY_DESCRIPTIONS, runfolder.INDEX_DESCRIPTIONS,
                  runfolder.STATUS_DESCRIPTIONS, runfolder.FILES):
        for name, what in table.items():
            assert what.strip(), f"{name}: no description"
            assert f"`{name}" in doc
    assert runfolder.HISTORY_COLUMNS == list(runfolder.HISTORY_DESCRIPTIONS)
    assert runfolder.INDEX_COLUMNS == list(runfolder.INDEX_DESCRIPTIONS)
    assert runfolder.STATUSES == tuple(runfolder.STATUS_DESCRIPTIONS)
    assert runfolder.DOC_COMMAND in doc.splitlines()[2]  # the command that regenerates it, at the top
def test_norms_doc_is_rendered_from_norms():
    from normbench.build import norms

    committed = (REPO / "docs" / "norms.md").read_text(encoding="utf-8")
    assert committed == norms.describe_markdown(), (
        f"docs/norms.md differs from normbench/build/norms.py's NORMS; regenerate it: {norms.DOC_COMMAND}"
    )


def test_norms_doc_has_every_norms_row_and_paragraph():
    from normbench.build import norms

    doc = norms.describe_markdown()
    for name, norm in norms.NORMS.items():
        assert f"| `{name}` | {norm.layer} |" in doc, name
        assert norm.notes in doc
    assert norms.DOC_COMMAND in doc.splitlines()[2]  # the command that regenerates it, at the top


def test_readme_is_a_front_door():
    """The README stays short and links every page of the manual under docs/."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"




def test_readme_compare_example_is_compares_output():
    """The annotated compare output in the README is what compare prints for the committed
    study (lines elided as "..."), so the example cannot drift from the code."""
    from conftest import cli

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = "normbench compare results/study/study_imdb"
    block = readme.split(f"`{command}`", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines() if line.strip() and line != "..."]
    assert len(shown) > 5
    result = cli("compare", REPO / "results" / "study" / "study_imdb")
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    missing = [line for line in shown if line not in printed]
    assert missing == [], f"README's compare example differs from `{command}`"


def test_readmes_change_table_names_files_and_registries_that_exist():
    """"Where to change what" is tested against the tree: every normbench/ path it names
    exists, every registry it names in capitals is that module's attribute, and every
    `python -m` command names a module that renders its page."""
    import importlib
    import re

    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Where to change what"):text.index("### Code layout")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| to add")]
    assert len(rows) >= 10
    for row in rows:
        edit = row.split(" | ")[1]
        paths = re.findall(r"`(normbench/[\w/]+(?:\.py)?/?)`", edit)
        for path in paths:
            assert (REPO / path).exists(), (path, row)
        module = next((p for p in paths if p.endswith(".py")), None)
        if module:
            mod = importlib.import_module(module.removesuffix(".py").replace("/", "."))
            for name in re.findall(r"`(_?[A-Z][A-Z_]+)`", edit):
                assert hasattr(mod, name), (name, module)
        for target in re.findall(r"python -m ([\w.]+) > (docs/[\w.]+)", row):
            assert (REPO / (target[0].replace(".", "/") + ".py")).exists() and (REPO / target[1]).exists(), row
