"""A temporary store holding a catalog to write copy for: a real export, imported as an upload
would be (invalid rows skipped), or the seeded demo catalog. Shared by the copy benchmarks."""

from __future__ import annotations

from pathlib import Path

from core.ingest import ingest_file
from core.sample_data import build_demo
from core.store import Store


def catalog_store(folder: str | Path, catalog: Path | None = None, *, scale: float = 0.05) -> tuple[Store, str]:
    """(store, a line saying where its products came from)."""
    store = Store(Path(folder) / "catalog.duckdb")
    if catalog:
        report = ingest_file(store, "products", catalog, skip_invalid=True)
        return store, f"{report.inserted} products imported from {catalog.name} ({report.rejected} rows skipped)"
    build_demo(store, seed=42, scale=scale)
    return store, "demo products (seed 42)"
