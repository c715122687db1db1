"""Where the repository's own files are, for modules that read its data (recipes, matrices,
known issues) from a checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
