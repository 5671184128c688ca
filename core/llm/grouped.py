"""A ``core.llm`` engine as the callable the copy writer and the persona writer call: chat prompts in,
answers grouped per prompt (``by_prompt``), with the engine's name and notices beside it.

Engines return one flat list of results (``prompt_index``, ``variant_index``) so that batches can be
laid out as the hardware likes; the writers want one list of answers per prompt. This is the one
place that turns the first into the second.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from core.llm.types import GenerationResult, StepFn, by_prompt

__all__ = ["GroupedGenerate", "accepts", "engine_generate_fn"]

GroupedGenerate = Callable[..., list[list[GenerationResult]]]


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (or any keyword): older engines and the tests' fakes do not take them all."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def engine_generate_fn(engine: Any) -> GroupedGenerate:
    """``engine`` (``generate(prompts, n=…) -> [GenerationResult]``, flat) as ``generate(prompts, n, …) -> [[result]]``.

    The callable carries ``model_name`` (for the audit trail), ``notices()`` (what the engine wants the
    user to know, such as an out-of-memory fallback to the CPU, for the progress message) and ``tuned``.
    """
    # Engines written before per-token progress existed keep working without it.
    reports_steps = accepts(engine.generate, "on_step")

    def generate(prompts: list[list[dict[str, str]]], n: int, max_new_tokens: int, temperature: float, seed: int,
                 stop: Sequence[str] = (), on_step: StepFn | None = None) -> list[list[GenerationResult]]:
        # Only when asked for: a wrapper that takes **kwargs may still stand in front of an engine that does not.
        steps = {"on_step": on_step} if reports_steps and on_step is not None else {}
        results = engine.generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stop=stop, **steps)
        return by_prompt(results, len(prompts))

    try:
        generate.model_name = engine.describe().name  # type: ignore[attr-defined]
    except Exception:  # a model name is for the audit trail; its absence must not stop generation
        generate.model_name = type(engine).__name__  # type: ignore[attr-defined]
    generate.notices = lambda: list(getattr(engine, "notices", None) or ())  # type: ignore[attr-defined]
    # A tuned writer learned the answer format and reads its prompt without few-shot examples (core.copy.teaching).
    generate.tuned = bool(getattr(engine, "tuned", False))  # type: ignore[attr-defined]
    return generate
