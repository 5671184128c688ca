"""Teaching the writer: a LoRA adapter (peft) on the resident model, trained on (prompt, answer) pairs.

The pairs' prompts are what the tuned writer reads at run time, without few-shot turns, so it
learns to do without them (a few hundred tokens a prompt instead of ~1,000). The loss is on the
answer's tokens only, and logits are computed only for the positions that have them: over the
49,152-token vocabulary, logits for every position are most of the memory (bench/RESULTS.md).
Rows are padded on the left, so every answer ends at the last position and one ``logits_to_keep``
covers the batch.

Training is resumable: every ``checkpoint_every`` steps the adapter, the optimizer and the step
are written under ``out/.checkpoint``; a run that finds a checkpoint of the same data and settings
goes on from it. ``on_step`` is told after each step and may raise to stop (a job's Stop): a
checkpoint is written first, so nothing done is lost. The finished adapter is saved with a
``manifest.json`` beside it: the base model, the settings and seed, the data (counts and a
digest) and the losses, so it can be retrained and judged.

What copy the pairs hold is the copy module's business (``core.copy.teaching``); this module knows
chats and answers only.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidRequestError, ModelLoadError

__all__ = ["ADAPTER_CONFIG", "MANIFEST", "TrainingPair", "TuneConfig", "TuneResult", "approx_tokens", "estimate_seconds", "total_steps",
           "is_adapter", "pairs_digest", "read_manifest", "train_adapter"]

MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
_CHECKPOINT = ".checkpoint"
# Every attention and MLP projection of a Llama-shaped model (SmolLM2's): the recipe bench/tune_speed.py measured.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Training tokens a second, forward and backward, LoRA r=16 on SmolLM2-135M (bench/RESULTS.md): the idle 2-core
# CPU box in float32 on the gold set's lessons (batches of 8 × ~500 tokens: ~48 s a step, 2026-12-07; the 220
# tokens/s of 8 × 64-token steps does not hold for prompts this long), and one H200 in bfloat16. Used only to say
# how long a run will take before it starts.
TOKENS_PER_SECOND = {"cpu": 85.0, "cuda": 60_000.0}

StepFn = Callable[[int, int, float], None]  # (steps done, steps in all, this step's loss)


@dataclass(frozen=True)
class TrainingPair:
    """One lesson: the chat the writer reads (system and request, no answer) and the answer it should give."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    answer: str
    source: str = ""  # "gold", "accepted", "approved", "edited": counted in the manifest

    @classmethod
    def of(cls, messages: Sequence[dict[str, str]], answer: str, source: str = "") -> TrainingPair:
        return cls(tuple((m["role"], m["content"]) for m in messages), answer.strip(), source)

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class TuneConfig:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 2e-4
    seed: int = 13
    max_tokens: int = 1024  # a longer pair is left out (and counted), never cut: a cut answer teaches cutting
    checkpoint_every: int = 10
    micro_batch: int = 2  # rows through the model at once; the batch's gradient is accumulated (memory, not maths)

    def check(self) -> None:
        if not (1 <= self.rank <= 256 and self.alpha > 0 and 0 <= self.dropout < 1):
            raise InvalidRequestError("LoRA rank must be 1 to 256, alpha positive and dropout in [0, 1).")
        if not (1 <= self.epochs <= 50 and 1 <= self.batch_size <= 512 and 0 < self.learning_rate < 1):
            raise InvalidRequestError("Epochs must be 1 to 50, the batch 1 to 512 and the learning rate in (0, 1).")


@dataclass
class TuneResult:
    out_dir: Path
    manifest: dict[str, Any]
    resumed_from: int = 0  # the step a checkpoint let it start from

    @property
    def summary(self) -> str:
        m = self.manifest
        return (f"Adapter saved to {self.out_dir}: {m['data']['pairs']} examples × {m['config']['epochs']} epochs in "
                f"{m['seconds']:.0f} s, loss {m['metrics']['loss_first_epoch']:.3f} → {m['metrics']['loss_last_epoch']:.3f}.")


def pairs_digest(pairs: Sequence[TrainingPair], config: TuneConfig) -> str:
    """What a checkpoint belongs to: the pairs in order and every setting. A different one starts afresh."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for pair in pairs:
        digest.update(json.dumps([pair.messages, pair.answer], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


# Characters a token, SmolLM2's tokenizer on the gold set's lessons (274,451 characters, 79,027 tokens with the
# chat template): a count good enough for "about 18 minutes" without loading the tokenizer.
CHARS_PER_TOKEN = 3.5


def approx_tokens(pairs: Sequence[TrainingPair]) -> int:
    return round(sum(sum(len(c) for _, c in p.messages) + len(p.answer) for p in pairs) / CHARS_PER_TOKEN)


def total_steps(pairs: int, config: TuneConfig) -> int:
    """Optimizer steps for ``pairs`` lessons: a step a batch, every epoch."""
    return math.ceil(pairs / config.batch_size) * config.epochs


def estimate_seconds(tokens: int, epochs: int, device: str = "cpu") -> float:
    """How long training ``tokens`` (prompt and answer, one epoch) for ``epochs`` takes, from the measured pace."""
    return tokens * epochs / TOKENS_PER_SECOND.get(device, TOKENS_PER_SECOND["cpu"])


def is_adapter(directory: Path) -> bool:
    return (directory / ADAPTER_CONFIG).is_file() and any(directory.glob("adapter_model.*"))


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"The adapter's manifest {path} cannot be read ({e}).") from e


# --- tokens ------------------------------------------------------------------------------


def encode_pair(tokenizer: Any, pair: TrainingPair) -> tuple[list[int], int]:
    """(token ids of prompt + answer + end of turn, how many of them are the answer's): the prompt rendered
    exactly as the generator renders it (chat template, assistant turn opened)."""
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(pair.chat(), tokenize=False, add_generation_prompt=True)
    else:
        prompt = "\n\n".join(content for _, content in pair.messages) + "\n"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(pair.answer, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]  # the writer learns to stop after the last line
    return [*prompt_ids, *answer_ids], len(answer_ids)


def _batch(rows: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any, Any, int]:
    """Left-padded (input_ids, attention_mask, position_ids, labels) and the number of last positions to score."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, answer) in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
        labels[i, width - answer:] = torch.tensor(row[-answer:])
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # as generate() numbers a left-padded row
    keep = max(answer for _, answer in rows) + 1  # the position before the answer predicts its first token
    return ids, mask, positions, labels, keep


def _loss_sum(model: Any, batch: tuple[Any, Any, Any, Any, int], device: Any) -> Any:
    """The summed cross-entropy of the batch's answer tokens."""
    import torch.nn.functional as F

    ids, mask, positions, labels, keep = batch
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, :-1].float()  # position j predicts token j + 1
    targets = labels[:, -keep + 1:].to(device)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")


def _step(model: Any, rows: Sequence[tuple[list[int], int]], pad: int, micro: int, device: Any) -> float:
    """Forward and backward for one batch, ``micro`` rows at a time (the same gradient as all at once, with the
    memory of ``micro``: a batch of 8 prompts of ~800 tokens holds ~14 GB of activations in float32 on a CPU)."""
    tokens = sum(answer for _, answer in rows)
    total = 0.0
    for start in range(0, len(rows), micro):
        loss = _loss_sum(model, _batch(rows[start:start + micro], pad), device) / tokens
        loss.backward()
        total += float(loss.detach())
    return total


# --- training ----------------------------------------------------------------------------


def _load_base(base_dir: Path, device: Any) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    except Exception as e:
        raise ModelLoadError(f"The base model in {base_dir} does not load for training: {str(e).splitlines()[0]}") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def _with_lora(model: Any, config: TuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = [t for t in TARGET_MODULES if any(name.endswith(t) for name, _ in model.named_modules())]
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _save_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    import torch

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **state}, partial / "state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # whole or not at all: a crash mid-write leaves the previous checkpoint


def _restore(folder: Path, model: Any, optimizer: Any, scheduler: Any, digest: str) -> dict[str, Any] | None:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state_file, weights = folder / "state.pt", folder / "adapter_model.safetensors"
    if not (state_file.is_file() and weights.is_file()):
        return None
    state = torch.load(state_file, weights_only=False)
    if state.get("digest") != digest:
        return None  # another run's: its data or settings differ
    set_peft_model_state_dict(model, load_file(str(weights)))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state


def _half_size(weights: Path) -> None:
    """The adapter's weights in float16: half the size in the repository (~10 MB at r=16), and merging them
    into a float32 or bfloat16 model at load loses nothing that shows."""
    import torch
    from safetensors.torch import load_file, save_file

    if weights.is_file():
        save_file({k: v.to(torch.float16) for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})


def train_adapter(base_dir: Path, pairs: Sequence[TrainingPair], out_dir: Path, config: TuneConfig = TuneConfig(), *,
                  base_name: str = "", device: str = "cpu", on_step: StepFn | None = None,
                  resume: bool = True, extra_manifest: dict[str, Any] | None = None) -> TuneResult:
    """Train a LoRA adapter on the model in ``base_dir`` (a Hugging Face directory) and save it to ``out_dir``.

    Deterministic for the same pairs, config and device (the seed orders the batches and starts the
    weights). ``on_step(done, total, loss)`` after every step; an exception it raises stops training
    after a checkpoint is written, and is raised again.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    config.check()
    if not pairs:
        raise InvalidRequestError("There is nothing to learn from: no examples were given.", title="No examples")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch_device = torch.device(device)
    model, tokenizer = _load_base(Path(base_dir), torch_device)
    encoded = [encode_pair(tokenizer, p) for p in pairs]
    kept = [i for i, (ids, _) in enumerate(encoded) if len(ids) <= config.max_tokens]
    if not kept:
        raise InvalidRequestError(f"Every example is longer than {config.max_tokens} tokens.", title="Examples too long")
    model = _with_lora(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    total = total_steps(len(kept), config)
    per_epoch = total // config.epochs
    # A tenth of the steps warm up (none in a run under ten steps: a warm-up step trains at rate 0).
    scheduler = get_linear_schedule_with_warmup(optimizer, total // 10, total)
    digest = pairs_digest(pairs, config)
    checkpoint = out_dir / _CHECKPOINT
    state = _restore(checkpoint, model, optimizer, scheduler, digest) if resume else None
    step = int(state["step"]) if state else 0
    resumed_from = step
    losses: list[float] = list(state["losses"]) if state else []
    order_rng = random.Random(config.seed)
    schedule = []  # every epoch's batches, drawn up front so a resumed run takes the same ones
    for _ in range(config.epochs):
        order = kept[:]
        order_rng.shuffle(order)
        schedule += [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    pad = tokenizer.pad_token_id
    for index in range(step, total):
        # Rows of like length together: less padding (the batch is the same set, so the gradient is too).
        rows = sorted((encoded[i] for i in schedule[index]), key=lambda row: len(row[0]))
        losses.append(_step(model, rows, pad, config.micro_batch, torch_device))
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step = index + 1
        try:
            if on_step is not None:
                on_step(step, total, losses[-1])
        except BaseException:
            _save_checkpoint(checkpoint, model, optimizer, scheduler, {"step": step, "digest": digest, "losses": losses})
            raise
        if step % config.checkpoint_every == 0 and step < total:
            _save_checkpoint(checkpoint, model, optimizer, scheduler, {"step": step, "digest": digest, "losses": losses})
    model.save_pretrained(str(out_dir))
    _half_size(out_dir / "adapter_model.safetensors")
    shutil.rmtree(checkpoint, ignore_errors=True)
    first, last = losses[:per_epoch], losses[-per_epoch:]
    sources: dict[str, int] = {}
    for i in kept:
        sources[pairs[i].source or "other"] = sources.get(pairs[i].source or "other", 0) + 1
    import peft
    import transformers

    manifest = {
        "base_model": base_name or Path(base_dir).name,
        "config": asdict(config),
        "data": {"pairs": len(kept), "left_out_too_long": len(pairs) - len(kept), "by_source": sources, "digest": digest,
                 "tokens_per_epoch": sum(len(encoded[i][0]) for i in kept)},
        "metrics": {"loss_first_epoch": sum(first) / len(first), "loss_last_epoch": sum(last) / len(last),
                    "steps": total, "trainable_parameters": sum(p.numel() for p in trainable)},
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(torch_device),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra_manifest or {}),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return TuneResult(out_dir, manifest, resumed_from)
