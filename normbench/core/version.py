"""The package version, recorded in every run folder (pyproject.toml states the same; a test checks)."""

__version__ = "0.2.0"
