"""Shared fixtures: a fresh store per test, small seeded data, the repo root on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402


@pytest.fixture
def tmp_store(tmp_path: Path) -> Store:
    """An empty, migrated database file of its own."""
    store = Store(tmp_path / "test.duckdb")
    yield store
    store.close()


@pytest.fixture
def catalog_store(tmp_store: Store) -> Store:
    """tmp_store with the small catalog from tests/data/products.csv."""
    from core.ingest import ingest_file

    ingest_file(tmp_store, "products", DATA / "products.csv")
    return tmp_store


def real_file(*parts: str) -> Path:
    """A file from ../shared/data/real, or skip when this checkout has no shared data beside it."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path
