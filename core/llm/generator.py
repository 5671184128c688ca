"""The resident local model: loaded once, shared by every session, batched generation.

``load_generator()`` resolves and loads the model (see ``loading``); a ``Generator`` holds it
in eval mode on its device and writes text for many prompts at once. All variants of one
prompt go through the model in the same batch (rows repeated, left padding), generation is
transformers' own ``model.generate``, and a lock makes one batch run at a time, since
Streamlit shares the cached generator across sessions and threads.

Out of memory on a GPU: the batch is halved and retried (and later batches stay at the
smaller size); a single row that still does not fit moves the model to the CPU in float32,
with a notice, and generation goes on there.
"""

from __future__ import annotations

import copy
import gc
import logging
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from core.errors import GenerationError, ModelLoadError
from core.llm.loading import DEFAULT_MODEL, convert_gguf, converted_dir, is_converted, load_pretrained, pick_device, resolve_model
from core.llm.types import BatchedGeneration, GenerationResult, ModelInfo, Prompt, StepFn, as_chat, check_params, new_seed

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = {"cuda": 512, "cpu": 64}  # sequences per model.generate call; lowered after an OOM


class Generator(BatchedGeneration):
    """A loaded causal language model and its tokenizer, ready to generate in batches."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, source: str = "", max_batch_rows: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        param = next(model.parameters())
        self.device: torch.device = param.device
        self.dtype: torch.dtype = param.dtype
        self.max_batch_rows = max_batch_rows or MAX_BATCH_ROWS.get(self.device.type, MAX_BATCH_ROWS["cuda"])
        self.notices: list[str] = []  # things the user should know (OOM fallbacks); shown by the page
        self.load_seconds: float | None = None
        self.converted = False  # True when this load de-quantized the GGUF (the slow first start)
        self.adapter: str | None = None  # the LoRA adapter merged in (load_generator): a tuned writer needs no examples
        self._parameters = sum(p.numel() for p in model.parameters())
        self._lock = threading.Lock()

        # Decoder-only models continue from the right end of the row, so pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ModelLoadError(f"The tokenizer of {name} has neither a padding nor an end-of-text token; batched generation needs one.")
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self._eos_ids = sorted(eos_ids)
        self._has_template = bool(getattr(tokenizer, "chat_template", None))
        self._max_positions = getattr(model.config, "max_position_embeddings", None)

    # -- what the sidebar shows ------------------------------------------------------------

    @property
    def tuned(self) -> bool:
        return bool(self.adapter)

    def describe(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            source=self.source,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            parameters=self._parameters,
        )

    # -- generation ------------------------------------------------------------------------

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads: the chat template applied, ending with the assistant's turn."""
        chat = as_chat(prompt)
        if self._has_template:
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(turn["content"] for turn in chat) + "\n"

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
    ) -> list[GenerationResult]:
        """``n`` variants for each prompt, ordered by (prompt, variant).

        A prompt's variants always share a batch; prompts are grouped so that a batch holds at
        most ``max_batch_rows`` sequences. ``temperature=0`` is greedy decoding. The same
        prompts, parameters and ``seed`` give the same texts on the same device; with no
        seed one is drawn and returned in every result. ``on_step(tokens, max_new_tokens)``
        after every token of every batch (a batch that needs several model calls starts at 0
        again); an exception it raises ends generation there.
        """
        check_params(n, max_new_tokens, temperature, top_p)
        if not prompts:
            return []
        seed = new_seed() if seed is None else int(seed)
        texts = [self.render(p) for p in prompts]
        config = self._generation_config(max_new_tokens, temperature, top_p, stop)
        results: list[GenerationResult] = []
        start = 0
        while start < len(texts):
            per_batch = max(1, self.max_batch_rows // n)
            rows = [(i, v) for i in range(start, min(start + per_batch, len(texts))) for v in range(n)]
            results.extend(self._run_rows(rows, texts, config, seed, n, on_step))
            start = rows[-1][0] + 1
        return results

    # -- internals -------------------------------------------------------------------------

    def _generation_config(self, max_new_tokens: int, temperature: float, top_p: float, stop: Sequence[str] = ()) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        # A row ends at a stop string like a turn's end: the rest of a batch need not wait for
        # a row that has moved on to "Headline 4" or a chatty afterword nobody will read.
        config.stop_strings = [s for s in stop if s] or None
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        config.pad_token_id = self.tokenizer.pad_token_id
        config.eos_token_id = self._eos_ids or None
        config.num_return_sequences = 1  # variants are repeated rows, so greedy and sampling batch alike
        if temperature > 0:
            config.do_sample, config.temperature, config.top_p = True, float(temperature), float(top_p)
        else:
            config.do_sample, config.temperature, config.top_p, config.top_k = False, None, None, None
        return config

    def _run_rows(self, rows: list[tuple[int, int]], texts: list[str], config: Any, seed: int, n: int,
                  on_step: StepFn | None = None) -> list[GenerationResult]:
        """Generate ``rows`` (prompt, variant) — halving on out-of-memory, then falling back to the CPU."""
        pending = [rows]
        done: list[GenerationResult] = []
        while pending:
            part = pending.pop(0)
            tried_on = self.device
            try:
                # Each model.generate call is seeded from the call's seed and its first row, so a
                # call is reproducible however it was split.
                done.extend(self._generate_once(part, texts, config, seed, seed + part[0][0] * n + part[0][1], on_step))
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                traceback.clear_frames(e.__traceback__)  # drop the failed batch's tensors before freeing
                self._free_memory()
                if len(part) > 1:
                    limit = (len(part) + 1) // 2
                    pending = [p[k : k + limit] for p in [part, *pending] for k in range(0, len(p), limit)]
                    if limit < self.max_batch_rows:
                        self.max_batch_rows = limit
                        self._notice(f"Ran out of memory on {self.device}; batches now hold at most {limit} sequences.")
                elif tried_on.type != "cpu":
                    self._fall_back_to_cpu()  # unless another thread already did
                    pending.insert(0, part)
                else:
                    raise GenerationError(
                        "The computer ran out of memory even for a single variant. Close other programs, "
                        "lower max_new_tokens, or choose a smaller model."
                    ) from e
        return done

    def _generate_once(self, rows: list[tuple[int, int]], texts: list[str], config: Any, call_seed: int, batch_seed: int,
                       on_step: StepFn | None = None) -> list[GenerationResult]:
        with self._lock, torch.inference_mode():
            prompts = list(dict.fromkeys(i for i, _ in rows))  # each distinct prompt once, in row order
            encoded = self.tokenizer(
                [texts[i] for i in prompts], padding=True, return_tensors="pt", add_special_tokens=not self._has_template
            )
            input_ids = encoded["input_ids"].to(self.device)
            attention_mask = encoded["attention_mask"].to(self.device)
            width = input_ids.shape[1]
            if self._max_positions and width + config.max_new_tokens > self._max_positions:
                raise GenerationError(
                    f"The prompt is {width} tokens and the model reads at most {self._max_positions} including the "
                    f"{config.max_new_tokens} it writes; shorten the product text or the examples."
                )
            torch.manual_seed(batch_seed)  # seeds the CPU and every CUDA device
            started = time.perf_counter()
            row_prompt = torch.tensor([prompts.index(i) for i, _ in rows], device=self.device)
            cache = self._shared_prefill(input_ids, attention_mask, row_prompt) if len(prompts) < len(rows) else None
            output = self.model.generate(
                input_ids=input_ids[row_prompt], attention_mask=attention_mask[row_prompt], past_key_values=cache,
                generation_config=config, tokenizer=self.tokenizer if config.stop_strings else None,
                stopping_criteria=StoppingCriteriaList([StepReporter(on_step, width, config.max_new_tokens)]) if on_step else None,
            )
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - started
            new_tokens = output[:, width:].cpu().tolist()
            prompt_lengths = attention_mask[row_prompt].sum(dim=1).cpu().tolist()
            eos = set(self._eos_ids)
            ends = [next((k for k, t in enumerate(tokens) if t in eos), None) for tokens in new_tokens]
            # Decoded under the lock too: a fast tokenizer used from two threads at once can fail.
            decoded = [self.tokenizer.decode(t if e is None else t[:e], skip_special_tokens=True) for t, e in zip(new_tokens, ends, strict=True)]
        # As the OpenAI API does: the text ends before the stop string, and stopping there is a "stop".
        cut = [cut_at_stop(text, config.stop_strings or ()) for text in decoded]
        texts_out = [text.strip() for text, _ in cut]

        results = []
        for row, (prompt_index, variant) in enumerate(rows):
            tokens, end = new_tokens[row], ends[row]
            results.append(
                GenerationResult(
                    prompt_index=prompt_index,
                    variant_index=variant,
                    text=texts_out[row],
                    prompt_tokens=int(prompt_lengths[row]),
                    completion_tokens=len(tokens) if end is None else end + 1,
                    finish_reason="length" if end is None and not cut[row][1] else "stop",
                    seconds=seconds,
                    batch_rows=len(rows),
                    seed=call_seed,
                    model=self.name,
                )
            )
        return results

    def _shared_prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, row_prompt: torch.Tensor) -> Any | None:
        """The KV cache of each distinct prompt (all but its last token), copied to every row that uses it.

        A copy prompt is ~1,000 tokens of few-shot examples and asks for 9 candidates; reading it
        once instead of 9 times makes the prompt's share of the work 9x smaller — on a CPU, most
        of a request. ``generate`` then reads only the last prompt token and writes. Models whose
        cache cannot be copied row by row generate as before (None: no cache).
        """
        if input_ids.shape[1] < 2:
            return None
        mask = attention_mask[:, :-1]
        # Left padding: positions count real tokens only, exactly as ``generate`` numbers them.
        positions = (mask.long().cumsum(-1) - 1).masked_fill_(mask == 0, 1)
        try:
            out = self.model(input_ids=input_ids[:, :-1], attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1)  # the prompt's logits are not needed: 1 row, not ~1,000 × 49k
        except TypeError:  # a model without logits_to_keep: skip the optimisation rather than guess
            return None
        cache = getattr(out, "past_key_values", None)
        if cache is None or not hasattr(cache, "batch_select_indices"):
            return None
        cache.batch_select_indices(row_prompt)
        return cache

    def _free_memory(self, device: torch.device | None = None) -> None:
        gc.collect()
        if (device or self.device).type == "cuda":
            torch.cuda.empty_cache()

    def _fall_back_to_cpu(self) -> None:
        with self._lock:
            was = self.device
            if was.type == "cpu":
                return
            self.model.to(device="cpu", dtype=torch.float32)
            self.device, self.dtype = torch.device("cpu"), torch.float32
            self.max_batch_rows = MAX_BATCH_ROWS["cpu"]
        self._free_memory(was)
        self._notice(f"Out of memory on {was} even for one sequence: the model now runs on the CPU (float32), which is slower.")

    def _notice(self, message: str) -> None:
        log.warning(message)
        self.notices.append(message)


class StepReporter(StoppingCriteria):
    """Tells ``on_step`` how many tokens each row has after every step; never stops a row itself.

    A stopping criterion rather than a streamer: generate() asks it between tokens without
    copying the new tokens to the host, so a GPU keeps its pace, and an exception raised by
    ``on_step`` (a Stop in the browser) ends the call at the next token instead of the last.
    """

    def __init__(self, on_step: StepFn, prompt_width: int, max_new_tokens: int) -> None:
        self.on_step, self.prompt_width, self.max_new_tokens = on_step, prompt_width, max_new_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.on_step(input_ids.shape[1] - self.prompt_width, self.max_new_tokens)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first of ``stops`` it contains, and whether one was found."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError other backends raise for the same thing."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def base_model_dir(model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> tuple[Path, bool]:
    """(the local Hugging Face directory of ``model``, whether this call converted it): the bundled GGUF
    converted once into ``cache_dir``; a directory as it is. What training starts from."""
    source = resolve_model(model)
    if source.kind == "hub":
        raise ModelLoadError(f"{source.location} is a hub id: training needs the model in a local folder.")
    if source.kind != "gguf":
        return Path(source.location), False
    directory = converted_dir(Path(source.location), cache_dir)
    if is_converted(directory):
        return directory, False
    return convert_gguf(Path(source.location), directory), True


def _with_adapter(model: Any, adapter: Path, base_name: str) -> Any:
    """``model`` with the LoRA adapter in ``adapter`` merged into its weights: as fast as the base model."""
    from core.llm.tuning import read_manifest

    trained_on = read_manifest(adapter).get("base_model")
    if trained_on and trained_on != base_name:
        raise ModelLoadError(f"The adapter in {adapter} was trained on {trained_on}, not on {base_name}. "
                             "Set MARKETLAB_ADAPTER=none, or train one for this model with `python -m core tune`.")
    try:
        from peft import PeftModel
    except ImportError as e:
        raise ModelLoadError("Loading the writer's adapter needs peft: install peft==0.22.0 (`make install` does), "
                             "or set MARKETLAB_ADAPTER=none.") from e
    try:
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
    except Exception as e:
        raise ModelLoadError(f"The adapter in {adapter} does not load: {_first_line(e)}. Set MARKETLAB_ADAPTER=none, "
                             "or train it again with `python -m core tune`.") from e


def load_generator(model: str = DEFAULT_MODEL, *, device: str = "auto", cache_dir: str | Path | None = None,
                   adapter: str | Path | None = None) -> Generator:
    """Resolve ``model`` (MARKETLAB_MODEL), pick the device (MARKETLAB_DEVICE) and load.

    The bundled GGUF (or any .gguf path) is converted once into ``cache_dir``
    (MARKETLAB_MODEL_CACHE) and loaded from there; a damaged conversion is redone once.
    ``adapter``: a LoRA adapter folder (``resolve_adapter`` of MARKETLAB_ADAPTER), merged into the
    weights; the generator is then ``tuned`` and its prompts leave the few-shot examples out.
    Raises ModelLoadError with what to fix.
    """
    started = time.perf_counter()
    source = resolve_model(model)
    torch_device, dtype = pick_device(device)
    converted = False
    if source.kind == "gguf":
        gguf = Path(source.location)
        directory = converted_dir(gguf, cache_dir)
        if not is_converted(directory):
            convert_gguf(gguf, directory)
            converted = True
        try:
            loaded, tokenizer = load_pretrained(str(directory), torch_device, dtype)
        except ModelLoadError:
            if converted:
                raise
            log.warning("The cached conversion in %s does not load; converting again", directory)
            shutil.rmtree(directory, ignore_errors=True)
            convert_gguf(gguf, directory)
            converted = True
            loaded, tokenizer = load_pretrained(str(directory), torch_device, dtype)
    else:
        loaded, tokenizer = load_pretrained(source.location, torch_device, dtype)
    name = source.name
    if adapter:
        loaded = _with_adapter(loaded, Path(adapter), source.name)
        name = f"{source.name} + {Path(adapter).name}"
    generator = Generator(loaded, tokenizer, name=name, source=source.label)
    generator.adapter = str(adapter) if adapter else None
    generator.load_seconds = time.perf_counter() - started
    generator.converted = converted
    log.info("Loaded %s on %s in %.1f s%s", name, torch_device, generator.load_seconds, " (converted)" if converted else "")
    return generator


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].rstrip(".")
