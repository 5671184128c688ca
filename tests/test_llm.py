"""core/llm: model resolution, loading, batched generation, seeds, locking, cancel, OOM fallback.

Plumbing runs on a tiny random-weight Llama (the SmolLM2 architecture at hidden size 64,
2 layers) with the real SmolLM2 tokenizer, saved to a folder and loaded through the same
``load_generator`` path a user's model directory takes. One test loads the bundled SmolLM2
itself on the CPU (converted from its GGUF into a temporary cache, then loaded again from
there) and writes a few short variants. Nothing here touches a network.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub on these machines; fail fast instead of retrying
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import build_tiny_llama  # noqa: E402

from core.errors import MarketLabError  # noqa: E402
from core.llm import DEFAULT_MODEL, Engine, GenerationError, ModelLoadError, bundled_gguf, load_engine, load_generator, pick_device, resolve_model  # noqa: E402
from core.llm.generator import Generator  # noqa: E402

CHAT = [
    {"role": "system", "content": "You write short ad copy from the product facts only."},
    {"role": "user", "content": "Headline (at most 30 characters) for: Hydra steel water bottle, 750 ml, keeps drinks cold 24 h."},
]


# -- fixtures: one tiny model per session ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(smol_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 256 positions: test_bad_parameters_and_overlong_prompts runs into that limit.
    return build_tiny_llama(smol_tokenizer_dir, tmp_path_factory.mktemp("tiny-llama"), max_positions=256)


@pytest.fixture(scope="session")
def tiny(tiny_model_dir: Path) -> Generator:
    return load_generator(str(tiny_model_dir), device="cpu")


@pytest.fixture
def fresh(tiny: Generator) -> Generator:
    """A Generator of its own around the shared tiny model, for tests that change its state."""
    return Generator(tiny.model, tiny.tokenizer, name="tiny")


# -- resolving and loading ------------------------------------------------------------------


def test_default_model_is_the_bundled_gguf() -> None:
    source = resolve_model(DEFAULT_MODEL)
    assert source.kind == "gguf" and source.location.endswith(".gguf") and Path(source.location).is_file()
    assert source.name == "SmolLM2-135M-Instruct"
    assert resolve_model("").location == source.location  # unset means the default


def test_hub_ids_and_directories_resolve_without_loading(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_model("someorg/some-model").kind == "hub"
    source = resolve_model(str(tiny_model_dir))
    assert source.kind == "directory" and source.name == tiny_model_dir.name


@pytest.mark.parametrize("make", ["missing", "no_config", "a_file"])
def test_missing_or_wrong_model_path_is_a_clear_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "model"
    if make == "no_config":
        target.mkdir()
        (target / "weights.bin").write_bytes(b"\0" * 16)
    elif make == "a_file":
        target.write_text("not a model")
    with pytest.raises(ModelLoadError) as info:
        load_generator(str(target), device="cpu")
    assert info.value.title == "The language model could not be loaded"
    assert str(target) in info.value.msg or "model" in info.value.msg
    assert isinstance(info.value, MarketLabError)


def test_corrupt_model_directory_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    with pytest.raises(ModelLoadError) as info:
        load_generator(str(broken), device="cpu")
    assert str(broken) in info.value.msg and "complete" in info.value.msg


def test_damaged_gguf_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError) as info:
        load_generator(str(fake), device="cpu", cache_dir=tmp_path / "cache")
    assert "model.gguf" in info.value.msg
    assert not any((tmp_path / "cache").glob("*")), "a failed conversion leaves nothing that looks finished"


def test_conversion_is_cached_and_a_damaged_cache_is_redone(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF path with the slow conversion stubbed out: the tiny model stands in for its output."""
    import shutil

    import core.llm.generator as generator_module
    from core.llm.loading import converted_dir, is_converted

    gguf = tmp_path / "stand-in.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    conversions: list[Path] = []

    def fake_convert(source: Path, target: Path) -> Path:
        conversions.append(target)
        shutil.copytree(tiny_model_dir, target)
        (target / "marketlab-source.json").write_text("{}")
        return target

    monkeypatch.setattr(generator_module, "convert_gguf", fake_convert)
    cache = tmp_path / "cache"
    first = load_generator(str(gguf), device="cpu", cache_dir=cache)
    second = load_generator(str(gguf), device="cpu", cache_dir=cache)
    assert (first.converted, second.converted, len(conversions)) == (True, False, 1)
    target = converted_dir(gguf, cache)
    assert conversions == [target] and is_converted(target) and first.describe().name == "stand-in"

    (target / "model.safetensors").write_bytes(b"truncated")  # the cache got damaged
    third = load_generator(str(gguf), device="cpu", cache_dir=cache)
    assert third.converted and len(conversions) == 2
    assert third.generate(["Hi"], max_new_tokens=2, seed=1)[0].completion_tokens > 0


def test_device_choice() -> None:
    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)
    with pytest.raises(ModelLoadError, match="MARKETLAB_DEVICE"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(ModelLoadError, match="sees no GPU"):
            pick_device("cuda")
    else:
        device, dtype = pick_device("auto")
        assert device.type == "cuda" and dtype in (torch.bfloat16, torch.float16)


def test_describe_for_the_sidebar(tiny: Generator, tiny_model_dir: Path) -> None:
    info = tiny.describe()
    assert (info.name, info.device, info.dtype) == (tiny_model_dir.name, "cpu", "float32")
    assert info.parameters == sum(p.numel() for p in tiny.model.parameters())
    assert info.summary.startswith(f"{tiny_model_dir.name} · cpu · float32 · ") and info.summary.endswith("parameters")
    assert not tiny.model.training
    assert isinstance(tiny, Engine)


def test_load_engine_uses_the_settings(tiny_model_dir: Path) -> None:
    settings = SimpleNamespace(model=str(tiny_model_dir), device="cpu", llm_url="", model_cache=None)
    engine = load_engine(settings)
    assert isinstance(engine, Generator) and engine.describe().name == tiny_model_dir.name


# -- batched generation ---------------------------------------------------------------------


def test_all_variants_of_a_request_share_one_batch(tiny: Generator) -> None:
    results = tiny.generate([CHAT, "Name a colour.", "Hi"], n=3, max_new_tokens=6, temperature=1.0, seed=3)
    assert [(r.prompt_index, r.variant_index) for r in results] == [(p, v) for p in range(3) for v in range(3)]
    assert {r.batch_rows for r in results} == {9}  # one model.generate call
    assert len({r.seconds for r in results}) == 1
    assert all(0 < r.completion_tokens <= 6 and r.finish_reason in ("stop", "length") for r in results)
    assert all(isinstance(r.text, str) and r.seed == 3 and r.model == tiny.name for r in results)
    lengths = [len(tiny.tokenizer(tiny.render(p), add_special_tokens=False)["input_ids"]) for p in (CHAT, "Name a colour.", "Hi")]
    assert [r.prompt_tokens for r in results[::3]] == lengths  # padding is not counted


def test_left_padding_keeps_each_prompt_intact(tiny: Generator) -> None:
    short, long = "Hi", CHAT
    batch = tiny.tokenizer([tiny.render(short), tiny.render(long)], padding=True, return_tensors="pt", add_special_tokens=False)
    pad = tiny.tokenizer.pad_token_id
    assert tiny.tokenizer.padding_side == "left" and pad is not None
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1  # pads in front of the short one
    assert batch["input_ids"][0, 0] == pad
    alone = tiny.generate([short], max_new_tokens=8, temperature=0)
    together = tiny.generate([long, short], max_new_tokens=8, temperature=0)
    assert together[1].text == alone[0].text  # greedy continuation unchanged by its neighbour's length


def test_variants_share_one_reading_of_their_prompt_and_write_the_same(tiny: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prompt's KV cache is computed once per prompt and copied to its variants: same text as reading it per row."""
    prompts = [CHAT, "Hi", "Name a colour and say why it suits a summer sale."]  # lengths differ: left padding
    shared = [r.text for r in tiny.generate(prompts, n=3, max_new_tokens=10, temperature=0)]
    sampled = [r.text for r in tiny.generate(prompts, n=3, max_new_tokens=10, temperature=1.0, seed=5)]
    calls = []
    original = tiny._shared_prefill
    monkeypatch.setattr(tiny, "_shared_prefill", lambda *a: calls.append(a) or original(*a))
    tiny.generate(prompts, n=3, max_new_tokens=2, temperature=0)
    assert len(calls) == 1 and calls[0][0].shape[0] == 3  # one prefill of 3 prompts for 9 rows
    monkeypatch.setattr(tiny, "_shared_prefill", lambda *a: None)  # every row reads its prompt itself
    assert [r.text for r in tiny.generate(prompts, n=3, max_new_tokens=10, temperature=0)] == shared
    assert [r.text for r in tiny.generate(prompts, n=3, max_new_tokens=10, temperature=1.0, seed=5)] == sampled


def test_a_row_stops_at_a_stop_string_which_is_not_part_of_the_text(tiny: Generator) -> None:
    free = tiny.generate([CHAT], max_new_tokens=12, temperature=1.0, seed=4)[0]  # the same seed samples the same tokens
    # Three visible characters from the second half of what it writes unstopped.
    start = next(i for i in range(len(free.text) // 2, len(free.text) - 2) if free.text[i : i + 3].isprintable()
                 and not free.text[i : i + 3].isspace() and free.text.find(free.text[i : i + 3]) == i)
    stop = free.text[start : start + 3]
    stopped = tiny.generate([CHAT], max_new_tokens=12, temperature=1.0, seed=4, stop=[stop])[0]
    assert stopped.text == free.text[: free.text.find(stop)].strip()
    assert stopped.finish_reason == "stop" and stopped.completion_tokens <= free.completion_tokens


def test_seeds_reproduce_and_differ(tiny: Generator) -> None:
    first = [r.text for r in tiny.generate([CHAT, "Hi"], n=2, max_new_tokens=8, temperature=1.0, seed=11)]
    again = [r.text for r in tiny.generate([CHAT, "Hi"], n=2, max_new_tokens=8, temperature=1.0, seed=11)]
    other = [r.text for r in tiny.generate([CHAT, "Hi"], n=2, max_new_tokens=8, temperature=1.0, seed=12)]
    assert first == again and first != other
    assert first[0] != first[1]  # variants of one prompt are different samples
    unseeded = tiny.generate(["Hi"], max_new_tokens=2)
    assert isinstance(unseeded[0].seed, int)  # drawn, and returned for the audit trail


def test_greedy_variants_are_identical(tiny: Generator) -> None:
    texts = {r.text for r in tiny.generate([CHAT], n=3, max_new_tokens=6, temperature=0)}
    assert len(texts) == 1


def test_bad_parameters_and_overlong_prompts(tiny: Generator) -> None:
    with pytest.raises(GenerationError, match="variants per prompt must be at least 1") as info:
        tiny.generate(["Hi"], n=0)
    assert info.value.title == "Invalid generation settings"
    with pytest.raises(GenerationError, match="top_p"):
        tiny.generate(["Hi"], top_p=0)
    with pytest.raises(GenerationError, match="batch size"):
        next(tiny.generate_batches(["Hi"], batch_size=0))
    with pytest.raises(ValueError, match="role"):
        tiny.generate([[{"text": "no role"}]])
    with pytest.raises(ValueError, match=r"pass \[chat\]"):
        tiny.generate(CHAT)  # one chat instead of a list of prompts
    assert tiny.generate([]) == []
    with pytest.raises(GenerationError, match="at most 256"):
        tiny.generate(["word " * 300], max_new_tokens=4)


def test_two_threads_share_the_model_safely(fresh: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {s: [r.text for r in fresh.generate([CHAT, "Hi"], n=2, max_new_tokens=6, temperature=1.0, seed=s)] for s in (1, 2)}
    active, most = [0], [0]
    original = fresh.model.generate
    guard = threading.Lock()

    def counting(*args, **kwargs):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return original(*args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(fresh.model, "generate", counting)
    got: dict[int, list[str]] = {}
    start = threading.Barrier(2)

    def work(seed: int) -> None:
        start.wait()
        for _ in range(3):
            got[seed] = [r.text for r in fresh.generate([CHAT, "Hi"], n=2, max_new_tokens=6, temperature=1.0, seed=seed)]

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert got == expected  # each thread's seed gave its own result, untouched by the other
    assert most[0] == 1  # never two model.generate calls at once


def test_generate_batches_reports_progress_and_keeps_indices(tiny: Generator) -> None:
    prompts = [f"Product {i}" for i in range(5)]
    calls: list[tuple[float, str]] = []
    batches = list(tiny.generate_batches(prompts, n=2, batch_size=2, max_new_tokens=3, seed=5, progress=lambda f, m: calls.append((f, m))))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [r.prompt_index for b in batches for r in b] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [f for f, _ in calls] == [0.4, 0.8, 1.0] and calls[-1][1] == "5 of 5 prompts written."
    again = [r.text for b in tiny.generate_batches(prompts, n=2, batch_size=2, max_new_tokens=3, seed=5) for r in b]
    assert again == [r.text for b in batches for r in b]


def test_cancel_stops_between_batches(tiny: Generator) -> None:
    seen: list[list] = []
    messages: list[str] = []
    for batch in tiny.generate_batches(
        [f"Product {i}" for i in range(6)], batch_size=2, max_new_tokens=2, progress=lambda f, m: messages.append(m), cancel=lambda: len(seen) >= 1
    ):
        seen.append(batch)
    assert len(seen) == 1 and len(seen[0]) == 2
    assert messages[-1] == "Stopped after 2 of 6 prompts."


def test_every_token_is_reported_and_a_raise_there_ends_the_call(tiny: Generator) -> None:
    """What makes the progress bar move inside a long call, and Stop in the browser act at once."""
    steps: list[tuple[int, int]] = []
    plain = [r.text for r in tiny.generate([CHAT, "Hi"], n=2, max_new_tokens=6, temperature=1.0, seed=9)]
    reported = tiny.generate([CHAT, "Hi"], n=2, max_new_tokens=6, temperature=1.0, seed=9, on_step=lambda d, t: steps.append((d, t)))
    assert [r.text for r in reported] == plain  # watching does not change what is written
    assert steps and steps == sorted(steps) and {t for _, t in steps} == {6}
    assert 1 <= steps[-1][0] <= 6

    class Stopped(BaseException):  # Streamlit's StopException is a BaseException too
        pass

    def stop_at_two(done: int, total: int) -> None:
        if done >= 2:
            raise Stopped

    with pytest.raises(Stopped):
        tiny.generate([CHAT], n=3, max_new_tokens=50, temperature=1.0, seed=9, on_step=stop_at_two)
    assert not tiny._lock.locked()  # the model is free for the next session
    assert len(tiny.generate(["Hi"], max_new_tokens=2, temperature=0)) == 1


# -- out of memory: halve, then CPU -----------------------------------------------------------


def test_out_of_memory_halves_the_batch(fresh: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    original = fresh.model.generate
    sizes: list[int] = []

    def tight(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        sizes.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args, **kwargs)

    monkeypatch.setattr(fresh.model, "generate", tight)
    results = fresh.generate([CHAT, "Hi", "Name a colour."], n=2, max_new_tokens=4, seed=1)
    assert [(r.prompt_index, r.variant_index) for r in results] == [(p, v) for p in range(3) for v in range(2)]
    assert sizes == [6, 3, 2, 1, 2, 1]  # 6 fails, 3 fails, then what is left runs in pieces of 2
    assert fresh.max_batch_rows == 2
    assert "Ran out of memory" in fresh.notices[0]
    sizes.clear()
    fresh.generate(["a", "b"], n=2, max_new_tokens=2, seed=1)
    assert max(sizes) <= 2  # later calls start at the size that fitted


def test_out_of_memory_on_one_row_falls_back_to_cpu(fresh: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    # A meta device stands in for a GPU: inputs can be moved there, and the fake generate
    # says "out of memory" for anything not on the CPU — exactly what a full GPU looks like.
    fresh.device = torch.device("meta")
    original = fresh.model.generate

    def gpu_full(*args, **kwargs):
        if kwargs["input_ids"].device.type != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(*args, **kwargs)

    original_prefill = fresh._shared_prefill

    def prefill_gpu_full(input_ids, *args):  # the prompt's first reading fills a full GPU just the same
        if input_ids.device.type != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original_prefill(input_ids, *args)

    monkeypatch.setattr(fresh.model, "generate", gpu_full)
    monkeypatch.setattr(fresh, "_shared_prefill", prefill_gpu_full)
    messages: list[str] = []
    batches = list(fresh.generate_batches(["Hi", "Name a colour."], n=2, batch_size=2, max_new_tokens=3, seed=2, progress=lambda f, m: messages.append(m)))
    assert len(batches[0]) == 4 and all(r.text is not None for r in batches[0])
    assert fresh.device == torch.device("cpu") and fresh.dtype == torch.float32
    assert fresh.describe().device == "cpu"
    assert any("now runs on the CPU" in n for n in fresh.notices)
    assert "now runs on the CPU" in messages[0]  # the progress bar tells the user


def test_out_of_memory_on_the_cpu_is_a_clear_error(fresh: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB. Out of memory")

    monkeypatch.setattr(fresh.model, "generate", full)
    with pytest.raises(GenerationError, match="ran out of memory"):
        fresh.generate(["Hi"], max_new_tokens=2)


def test_other_errors_are_not_mistaken_for_out_of_memory(fresh: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(fresh.model, "generate", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        fresh.generate(["Hi", "Ho"], max_new_tokens=2)
    assert fresh.notices == []


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_smollm2_converts_once_then_writes_copy(tmp_path: Path) -> None:
    """Convert the bundled GGUF into an empty cache, load again from the cache, write 2 × 2 variants."""
    first = load_generator(DEFAULT_MODEL, device="cpu", cache_dir=tmp_path)
    assert first.converted
    del first
    generator = load_generator(DEFAULT_MODEL, device="cpu", cache_dir=tmp_path)
    assert not generator.converted  # read from the safetensors folder this time
    info = generator.describe()
    assert (info.name, info.device, info.dtype) == ("SmolLM2-135M-Instruct", "cpu", "float32")
    assert 130e6 < info.parameters < 140e6
    results = generator.generate([CHAT, "Write a subject line for a summer sale email."], n=2, max_new_tokens=24, temperature=0.7, seed=42)
    assert len(results) == 4
    assert all(r.text.strip() and 0 < r.completion_tokens <= 24 for r in results)
    assert all("<|im_" not in r.text for r in results)  # special tokens are not part of the copy
