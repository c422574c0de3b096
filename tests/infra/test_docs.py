"""The documentation: `mkdocs build --strict` (what `make docs` runs) succeeds with no warning, so
no page links to a missing page or anchor and no page is left out of the navigation; every link of
README.md (the front page, read on GitHub) points at a file of the repository and, for
``docs/<page>.md#anchor``, at a heading the built site really has. And the check can fail: a page
with a broken link or anchor aborts the strict build."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _build(REPO_ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return out


def _anchors(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def test_the_site_builds_strict_with_every_page_in_it(site):
    pages = sorted(p.stem for p in (REPO_ROOT / "docs").glob("*.md"))
    for page in pages:
        built = site / "index.html" if page == "index" else site / page / "index.html"
        assert built.is_file(), f"docs/{page}.md was not built"
    assert "layout" in pages and "benchmarks" in pages


def test_every_readme_link_resolves(site):
    readme = (REPO_ROOT / "README.md").read_text()
    links = LINK.findall(readme)
    assert len(links) >= 10, links
    for target in links:
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        if not path:
            heading_ids = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                           for h in re.findall(r"^#+ (.+)$", readme, flags=re.M)}
            assert anchor in heading_ids, f"README.md links to #{anchor}, which is no heading of README.md"
            continue
        assert (REPO_ROOT / path).exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), target
            stem = Path(path).stem
            html = (site / "index.html" if stem == "index" else site / stem / "index.html").read_text()
            assert anchor in _anchors(html), f"README.md links to {target}: no anchor #{anchor} in that page"


@pytest.mark.parametrize("broken", ["[gone](no-such-page.md)", "[gone](usage.md#no-such-heading)", "[gone](#nowhere)"])
def test_a_broken_link_fails_the_strict_build(tmp_path, broken):
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    shutil.copy(REPO_ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "layout.md").open("a") as fh:
        fh.write(f"\nA link that goes nowhere: {broken}\n")
    done = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "layout.md" in done.stderr, done.stderr[-2000:]


def test_readme_detector_table_lists_every_registry_entry():
    """README's detector table names every registered detector (brace patterns expanded), and
    nothing that is not registered."""
    import itertools

    from models.detectors import list_detectors

    text = (REPO_ROOT / "README.md").read_text()
    table = text.split("## Detectors", 1)[1].split("\n## ", 1)[0]
    named = set()
    for row in (line for line in table.splitlines() if line.startswith("| `")):
        for cell in re.findall(r"`([^`]+)`", row.split("|")[1]):
            parts = re.split(r"\{([^}]*)\}", cell)  # literal, choices, literal, choices, ...
            choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
            named |= {"".join(combo) for combo in itertools.product(*choices)}
    assert named == set(list_detectors())
