"""The documentation site builds with `mkdocs build --strict`, and the README's links resolve.

Strict mode turns every warning into a failure: a link to a missing page or anchor, a page
left out of the navigation, a link target mkdocs does not recognise. The site is built into a
temporary directory; nothing is committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

from tests.stacks import REPO

# Markdown links: [text](target), the target without spaces.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def build_site(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # Not --quiet: it drops warnings before strict mode counts them, and the build would pass.
    config = ["--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)]
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", *config],
        capture_output=True,
        text=True,
        # Material's end-of-life banner is not a build message; keep CI output to what matters.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    result = build_site(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index", "configuration", "runtime-settings", "operations"):
        assert (tmp_path / "site" / ("" if page == "index" else page) / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the vault page](vault.md#no-such-section).\n")

    result = build_site(tmp_path, tmp_path / "site")

    assert result.returncode != 0
    assert "no-such-section" in result.stdout + result.stderr


def _anchors(page: Path) -> set[str]:
    return {slugify(h.replace("`", ""), "-") for h in HEADING.findall(page.read_text())}


def test_every_relative_link_of_the_readme_resolves() -> None:
    readme = (REPO / "README.md").read_text()
    links = [t for t in LINK.findall(readme) if not re.match(r"[a-z]+:", t)]
    assert links, "the README links into the docs site"
    for target in links:
        path, _, anchor = target.partition("#")
        file = REPO / path if path else REPO / "README.md"
        assert file.exists(), f"README links to {target}: {path} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"README links to {target}: no such heading"
