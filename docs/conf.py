"""Sphinx configuration of the user guide: MyST Markdown pages, built by `./run docs`."""

project = "s3s4-harness"
author = "s3s4-harness contributors"
copyright = "s3s4-harness contributors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Links such as [the check table](checks.md#the-checks) name a heading by its slug.
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = "s3s4-harness"
html_theme_options = {"page_width": "1200px", "sidebar_width": "240px"}
