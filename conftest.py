"""Root conftest. The harness plugin itself is registered by the ``pytest11`` entry point in
pyproject.toml (installed by ./run), so any checkout or installed copy gets the same plugin;
here only what this repository's own test runs need."""

pytest_plugins = ("pytester",)
