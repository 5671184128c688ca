"""The language model: loading, device placement, batched generation, and a server engine.

    from core.llm import load_engine
    engine = load_engine(load_settings())      # once per process (st.cache_resource in pages/_resources.py)
    engine.describe().summary                  # "SmolLM2-135M-Instruct · cpu · float32 · 135M parameters"
    results = engine.generate([chat], n=3, max_new_tokens=48, temperature=0.8, seed=7)

Importing this package is cheap: torch and transformers load when a local model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import GenerationError, LLMServerError, ModelLoadError
from core.llm.loading import DEFAULT_MODEL, DEFAULT_MODEL_CACHE, ModelSource, bundled_gguf, pick_device, resolve_model
from core.llm.openai_engine import OpenAIEngine
from core.llm.types import ChatMessage, Engine, GenerationResult, ModelInfo, Prompt

if TYPE_CHECKING:
    from core.llm.generator import Generator

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_CACHE",
    "ChatMessage",
    "Engine",
    "GenerationError",
    "GenerationResult",
    "Generator",
    "LLMServerError",
    "ModelInfo",
    "ModelLoadError",
    "ModelSource",
    "OpenAIEngine",
    "Prompt",
    "bundled_gguf",
    "load_engine",
    "load_generator",
    "pick_device",
    "resolve_model",
]


def load_generator(*args: Any, **kwargs: Any) -> Generator:
    """The local model (see ``core.llm.generator.load_generator``); imports torch on first use."""
    from core.llm.generator import load_generator as _load

    return _load(*args, **kwargs)


def load_engine(settings: Any) -> Engine:
    """The engine the settings ask for: the server at MARKETLAB_LLM_URL when set, else the local model.

    ``settings`` is ``core.config.Settings``; ``llm_url`` and ``model_cache`` are read when the
    settings have them (MARKETLAB_LLM_URL, MARKETLAB_MODEL_CACHE), with the defaults otherwise.
    """
    url = (getattr(settings, "llm_url", "") or "").strip()
    if url:
        return OpenAIEngine(url, model=settings.model)
    from core.llm.loading import resolve_adapter

    adapter = resolve_adapter(getattr(settings, "adapter", "shipped"), settings.model)
    return load_generator(settings.model, device=settings.device, cache_dir=getattr(settings, "model_cache", None), adapter=adapter)


def __getattr__(name: str) -> Any:
    if name == "Generator":
        from core.llm.generator import Generator

        return Generator
    raise AttributeError(f"module 'core.llm' has no attribute {name!r}")
