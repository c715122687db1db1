"""The user guide builds cleanly and the README stays a front door.

Sphinx runs with warnings as errors and nitpicky references, so a broken cross-reference, a
missing heading anchor or a page left out of the toctree fails `./run tests`. The README is
held to its shape: short, the two main commands first, and no link to a file that is gone.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 150
FIRST_COMMANDS = ("./run suite", "./run tests")
# [text](target) with an optional "title"; images too. Angle-bracketed targets are not used.
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto: ...


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    sphinx_build = Path(sys.executable).parent / "sphinx-build"
    argv = [
        str(sphinx_build),
        "-W",  # warnings are errors
        "--keep-going",  # but report all of them
        "-n",  # nitpicky: every reference must resolve
        "-E",  # a fresh environment, not a cached one
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(ROOT / "docs"),
        str(tmp_path / "html"),
    ]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "index.html").is_file()


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_short() -> None:
    lines = _readme().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {README_MAX_LINES} and move "
        "the detail into docs/"
    )


def test_readme_starts_with_the_two_main_commands() -> None:
    block = re.search(r"^```[^\n]*\n(.*?)^```", _readme(), re.MULTILINE | re.DOTALL)
    assert block is not None, "README.md has no code block"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert tuple(line.split("#")[0].strip() for line in commands[:2]) == FIRST_COMMANDS


def test_readme_links_point_at_existing_files() -> None:
    text = re.sub(r"^```.*?^```", "", _readme(), flags=re.MULTILINE | re.DOTALL)
    targets = [t for t in MARKDOWN_LINK.findall(text) if not EXTERNAL.match(t)]
    assert targets, "README.md links to nothing in the repository"
    missing = [
        target
        for target in targets
        if not target.startswith("#") and not (ROOT / target.split("#")[0]).exists()
    ]
    assert not missing, f"README.md links to files that do not exist: {missing}"
