"""Where the package's cached data lives: one folder, ``lossviz/data``, shipped with the package."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "data_file"]

DATA_DIR = Path(__file__).with_name("data")


def data_file(name: str) -> Path:
    """The path of ``name`` inside the package's data folder (it may not exist yet)."""
    return DATA_DIR / name
