"""The contract every engine keeps: prompts in, ``GenerationResult`` rows out.

Two engines implement it — the resident local model (``Generator``) and an OpenAI-compatible
server (``OpenAIEngine``) — so ``core/copy`` and the pages never care which one is behind it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from core.errors import GenerationError

# One chat turn: {"role": "system" | "user" | "assistant", "content": "..."}.
ChatMessage = Mapping[str, str]
# A prompt is a chat (list of turns) or plain text, which is sent as one user turn.
Prompt = str | Sequence[ChatMessage]
# progress(fraction done in [0, 1], message for a progress bar)
ProgressFn = Callable[[float, str], None]
# cancel() -> True to stop before the next batch (a Stop button sets a flag this reads)
CancelFn = Callable[[], bool]
# on_step(done, total): progress inside one generate call — tokens written of at most total by
# the local model, prompts answered of total by a server. Called on the caller's thread; an
# exception it raises (Streamlit's Stop) ends the call there.
StepFn = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationResult:
    """One variant for one prompt. ``prompt_index`` is the prompt's place in the caller's list."""

    prompt_index: int
    variant_index: int  # 0 .. n-1 among the variants of the same prompt
    text: str
    prompt_tokens: int
    completion_tokens: int  # generated tokens up to and including the end-of-turn token
    finish_reason: str  # "stop": the model ended its turn; "length": cut at max_new_tokens
    seconds: float  # wall time of the batch (or request) this variant was generated in
    batch_rows: int  # how many sequences shared that batch; timing is per batch, not per row
    seed: int  # the seed the batch ran with: kept with an approved variant for the audit trail
    model: str  # which model wrote it (ModelInfo.name)


@dataclass(frozen=True)
class ModelInfo:
    """What the sidebar shows about the engine in use."""

    name: str  # e.g. "SmolLM2-135M-Instruct"
    source: str  # where it came from: bundled GGUF, a directory, a hub id, a server URL
    device: str  # "cpu", "cuda:0", or "server"
    dtype: str  # "float32", "bfloat16", or "" when a server decides
    parameters: int | None  # None when a server does not say

    @property
    def summary(self) -> str:
        """One line: ``SmolLM2-135M-Instruct · cuda:0 · bfloat16 · 135M parameters``."""
        parts = [self.name, self.device]
        if self.dtype:
            parts.append(self.dtype)
        if self.parameters:
            parts.append(f"{_human(self.parameters)} parameters")
        return " · ".join(parts)


def _human(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


@runtime_checkable
class Engine(Protocol):
    """What copy generation needs from a language model, local or remote."""

    def describe(self) -> ModelInfo: ...

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] = (),
        on_step: StepFn | None = None,
    ) -> list[GenerationResult]: ...

    def generate_batches(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        batch_size: int = 8,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> Iterator[list[GenerationResult]]: ...


def new_seed() -> int:
    """A fresh seed for a call that did not name one; it is returned in every result."""
    return secrets.randbelow(2**31 - 1)


def as_chat(prompt: Prompt) -> list[dict[str, str]]:
    """A prompt as chat turns; plain text becomes one user turn. Malformed turns raise ValueError."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Mapping):
        raise ValueError("a prompt is text or a list of chat turns, not a single turn; for one chat pass [chat]")
    chat = []
    for turn in prompt:
        if not isinstance(turn, Mapping) or not isinstance(turn.get("role"), str) or not isinstance(turn.get("content"), str):
            raise ValueError(f"a chat turn must be a mapping with 'role' and 'content' text, got {turn!r}")
        chat.append({"role": turn["role"], "content": turn["content"]})
    if not chat:
        raise ValueError("a chat prompt needs at least one turn")
    return chat


def check_params(n: int, max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Reject values no engine can honour, in words a user can act on (they may come from the CLI)."""
    problem = None
    if n < 1:
        problem = f"The number of variants per prompt must be at least 1, got {n}."
    elif max_new_tokens < 1:
        problem = f"max_new_tokens must be at least 1, got {max_new_tokens}."
    elif not (temperature >= 0 and math.isfinite(temperature)):
        problem = f"Temperature must be 0 (always the likeliest word) or more, got {temperature}."
    elif not 0 < top_p <= 1:
        problem = f"top_p must be more than 0 and at most 1, got {top_p}."
    if problem:
        raise GenerationError(problem, title="Invalid generation settings")


class BatchedGeneration:
    """``generate_batches`` for any engine with ``generate``: one implementation for the local model and the server."""

    def generate_batches(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        batch_size: int = 8,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> Iterator[list[GenerationResult]]:
        """Many prompts, ``batch_size`` prompts (× n variants) per batch; yields each batch's results.

        ``progress(fraction, message)`` after each batch (with the engine's new notices, such as an
        out-of-memory fallback); ``cancel()`` is checked before each batch and stops the iteration
        when it returns True. Other callers may use the model between two batches.
        """
        check_params(n, max_new_tokens, temperature, top_p)
        return iterate_in_batches(
            self, prompts, n=n, batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,  # type: ignore[arg-type]
            top_p=top_p, seed=seed, progress=progress, cancel=cancel,
            notices=lambda: list(getattr(self, "notices", None) or ()),
        )


def by_prompt(results: Sequence[GenerationResult], prompts: int) -> list[list[GenerationResult]]:
    """An engine's flat results grouped per prompt, each group in variant order: what the copy writer
    and the persona writer both read."""
    grouped: list[list[GenerationResult]] = [[] for _ in range(prompts)]
    for result in sorted(results, key=lambda r: (r.prompt_index, r.variant_index)):
        grouped[result.prompt_index].append(result)
    return grouped


def iterate_in_batches(
    engine: Engine,
    prompts: Sequence[Prompt],
    *,
    n: int,
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    notices: Callable[[], list[str]] = list,
) -> Iterator[list[GenerationResult]]:
    """Shared ``generate_batches``: ``batch_size`` prompts (× n variants) per ``engine.generate`` call.

    Yields each batch's results (``prompt_index`` counts across the whole list), reports
    progress after every batch and checks ``cancel`` before each one, so a Stop button takes
    effect within one batch. The batch starting at prompt i runs with ``seed + i``, so the same
    call is reproducible and an OpenAI-compatible server sees the seeds one ``generate`` would send.
    """
    if batch_size < 1:
        raise GenerationError(f"The batch size must be at least 1, got {batch_size}.", title="Invalid generation settings")
    total = len(prompts)
    base_seed = new_seed() if seed is None else seed
    seen_notices = len(notices())
    done = 0
    for start in range(0, total, batch_size):
        if cancel is not None and cancel():
            if progress is not None:
                progress(done / total, f"Stopped after {done} of {total} prompts.")
            return
        chunk = prompts[start : start + batch_size]
        results = engine.generate(chunk, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=base_seed + start)
        results = [_shift(r, start) for r in results]
        done = start + len(chunk)
        if progress is not None:
            message = f"{done} of {total} prompts written."
            current = notices()
            if len(current) > seen_notices:
                message += " " + " ".join(current[seen_notices:])
                seen_notices = len(current)
            progress(done / total, message)
        yield results


def _shift(result: GenerationResult, offset: int) -> GenerationResult:
    return result if not offset else replace(result, prompt_index=result.prompt_index + offset)
