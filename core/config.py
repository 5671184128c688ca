"""Settings, each from an environment variable with a default and a help line.

Read on demand (``load_settings()``), never at import, so tests can point one process at
several databases by changing the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("MARKETLAB_DB", "data/marketlab.duckdb", "DuckDB database file; created (and migrated) if missing."),
    Setting("MARKETLAB_MAX_UPLOAD_MB", "200", "Largest file an upload may be, in MB; larger files are refused before parsing."),
    Setting("MARKETLAB_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct", "Language model: the bundled SmolLM2 by default, or a local Hugging Face directory."),
    Setting("MARKETLAB_DEVICE", "auto", "Where the model runs: auto (CUDA when available), cuda or cpu."),
    Setting("MARKETLAB_MODEL_CACHE", "~/.cache/marketlab/models", "Where the bundled GGUF is converted to safetensors once, so later loads take seconds."),
    Setting("MARKETLAB_LLM_URL", "", "An OpenAI-compatible server (vLLM, TGI) to generate with instead of the local model; empty: local."),
    Setting("MARKETLAB_ADAPTER", "shipped", "The writer's LoRA adapter: shipped (data/adapters/copywriter, when there is one), "
            "none (the base model with few-shot examples), or the folder of one `python -m core tune` trained."),
)

_DEVICES = ("auto", "cuda", "cpu")


@dataclass(frozen=True)
class Settings:
    db_path: Path
    max_upload_mb: float
    model: str
    device: str
    model_cache: str
    llm_url: str
    adapter: str = "shipped"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _get(name: str) -> str:
    default = next(s.default for s in SETTINGS if s.name == name)
    return os.environ.get(name, "").strip() or default


def load_settings() -> Settings:
    """Settings as the environment has them now; a bad value raises ConfigError naming the variable."""
    try:
        max_mb = float(_get("MARKETLAB_MAX_UPLOAD_MB"))
    except ValueError:
        raise ConfigError(f"MARKETLAB_MAX_UPLOAD_MB must be a number of megabytes, got {_get('MARKETLAB_MAX_UPLOAD_MB')!r}.")
    if max_mb <= 0:
        raise ConfigError("MARKETLAB_MAX_UPLOAD_MB must be greater than zero.")
    device = _get("MARKETLAB_DEVICE").lower()
    if device not in _DEVICES:
        raise ConfigError(f"MARKETLAB_DEVICE must be one of {', '.join(_DEVICES)}, got {device!r}.")
    return Settings(
        db_path=Path(_get("MARKETLAB_DB")),
        max_upload_mb=max_mb,
        model=_get("MARKETLAB_MODEL"),
        device=device,
        model_cache=_get("MARKETLAB_MODEL_CACHE"),
        llm_url=os.environ.get("MARKETLAB_LLM_URL", "").strip(),
        adapter=_get("MARKETLAB_ADAPTER"),
    )
