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
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database with the small test catalog and events, and MARKETLAB_DB pointing at it."""
    path = tmp_path / "app.duckdb"
    from core.ingest import ingest_file

    store = Store(path)
    ingest_file(store, "products", DATA / "products.csv")
    ingest_file(store, "events", DATA / "events.csv")
    store.close()
    monkeypatch.setenv("MARKETLAB_DB", str(path))
    return path


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


# -- a tiny random-weight Llama with the real SmolLM2 tokenizer (plumbing tests, never the real model)


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2 tokenizer (vocabulary, chat template), read from the bundled GGUF."""
    from transformers import AutoTokenizer

    from core.llm import bundled_gguf

    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out = tmp_path_factory.mktemp("smol-tokenizer")
    tokenizer.save_pretrained(str(out))
    return out


def build_tiny_llama(tokenizer_dir: Path, out: Path, max_positions: int) -> Path:
    """A Hugging Face directory: tiny random Llama (seeded) + the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
