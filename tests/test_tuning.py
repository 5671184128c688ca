"""Teaching the writer (issue 14): lessons from copy that passed every check, a LoRA adapter trained
on them that resumes, stops and loads. Plumbing with a tiny random-weight Llama and the real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import build_tiny_llama
from core.copy.channels import get_channel, get_tone
from core.copy.facts import ProductFacts
from core.copy.prompts import build_messages
from core.copy.teaching import gold_lessons, lesson, store_lessons
from core.llm.tuning import MANIFEST, TrainingPair, TuneConfig, encode_pair, is_adapter, train_adapter

BOTTLE = ProductFacts("P-T1", "Summit 750 ml Insulated Steel Water Bottle", "Summit", "Drinkware", 32.0, "USD",
                      "Holds 750 ml and keeps drinks cold for 24 hours. Leakproof lid.",
                      {"material": "stainless steel", "capacity_ml": 750, "leakproof": True})
GOOD = {"headline": "Summit Insulated Water Bottle", "headline_2": "Holds 750 ml", "headline_3": "Leakproof Lid",
        "description": "Keeps drinks cold for 24 hours in stainless steel.", "description_2": "A leakproof lid for your bag."}


@pytest.fixture(scope="module")
def tiny_dir(smol_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(smol_tokenizer_dir, tmp_path_factory.mktemp("tiny-tune"), max_positions=2048)


def test_every_gold_example_is_a_lesson_whose_prompt_has_no_examples_and_whose_answer_is_the_models_format() -> None:
    lessons = gold_lessons()
    assert len(lessons.pairs) >= 150 and not lessons.refused
    pair = next(p for p in lessons.pairs if p.answer.startswith("Headline: "))
    assert [role for role, _ in pair.messages] == ["system", "user"]  # no few-shot turns
    with_examples = build_messages(BOTTLE, "google_rsa", get_tone("friendly"))
    without = build_messages(BOTTLE, "google_rsa", get_tone("friendly"), few_shot=False)
    assert len(without) == 2 and sum(len(m["content"]) for m in without) * 2 < sum(len(m["content"]) for m in with_examples)
    assert [line.split(":")[0] for line in pair.answer.splitlines()] == [
        "Headline", "Headline 2", "Headline 3", "Description", "Description 2"]


def test_copy_that_fails_a_check_is_no_lesson() -> None:
    pair, problems = lesson(BOTTLE, "google_rsa", GOOD, "friendly", "approved")
    assert pair is not None and not problems
    assert pair.answer.splitlines() == [
        "Headline: Summit Insulated Water Bottle", "Headline 2: Holds 750 ml", "Headline 3: Leakproof Lid",
        "Description: Keeps drinks cold for 24 hours in stainless steel.", "Description 2: A leakproof lid for your bag."]
    unbacked = {**GOOD, "headline_2": "Holds 2 Litres"}  # the data says 750 ml
    pair, problems = lesson(BOTTLE, "google_rsa", unbacked, "friendly", "approved")
    assert pair is None and problems


def test_the_marketers_approved_and_edited_variants_are_lessons_and_plain_drafts_are_not(catalog_store) -> None:
    from core.copy.variant_store import Variant, save_variants

    with catalog_store.cursor() as cur:
        pid, title = cur.execute("SELECT product_id, title FROM products ORDER BY product_id LIMIT 1").fetchone()
    assert title == "Summit 750 ml Insulated Steel Water Bottle"
    fields = {"headline": "Summit Insulated Water Bottle", "headline_2": "Double-Wall Steel", "headline_3": "Keeps Drinks Cold",
              "description": "Double-wall steel keeps drinks cold for 24 hours.", "description_2": "Holds 750 ml, in blue."}
    approved = Variant(pid, "google_rsa", "friendly", dict(fields), status="approved")
    edited = Variant(pid, "google_rsa", "friendly", dict(fields), params={"edited": True})
    draft = Variant(pid, "google_rsa", "friendly", dict(fields))
    save_variants(catalog_store, [approved, edited, draft])
    lessons = store_lessons(catalog_store)
    assert lessons.by_source() == {"approved": 1, "edited": 1}, lessons.refused


def test_an_answer_is_scored_on_its_own_tokens_and_ends_the_turn(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    pair = TrainingPair.of([{"role": "system", "content": "Write."}, {"role": "user", "content": "A bottle."}],
                           "Headline: Summit Bottle", "gold")
    ids, answer = encode_pair(tokenizer, pair)
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[-answer:-1]) == "Headline: Summit Bottle"
    prompt = tokenizer.decode(ids[:-answer])
    assert prompt.endswith("<|im_start|>assistant\n")  # exactly where the generator's prompt ends


def _pairs(n: int) -> list[TrainingPair]:
    return [TrainingPair.of([{"role": "system", "content": "You write ads."},
                             {"role": "user", "content": f"Product {i}: a steel bottle that holds {500 + i} ml."}],
                            f"Headline: Bottle {i}\nHeadline 2: Holds {500 + i} ml", "gold") for i in range(n)]


def test_training_lowers_the_loss_saves_an_adapter_with_its_manifest_and_is_reproducible(tiny_dir: Path, tmp_path: Path) -> None:
    config = TuneConfig(epochs=3, batch_size=4, learning_rate=5e-3, rank=4, alpha=8, dropout=0.0, checkpoint_every=2)
    steps: list[tuple[int, int]] = []
    result = train_adapter(tiny_dir, _pairs(8), tmp_path / "a", config, on_step=lambda d, t, loss: steps.append((d, t)))
    assert steps[-1] == (6, 6) and is_adapter(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert manifest["data"]["pairs"] == 8 and manifest["config"]["seed"] == 13 and manifest["data"]["by_source"] == {"gold": 8}
    assert manifest["metrics"]["loss_last_epoch"] < manifest["metrics"]["loss_first_epoch"]
    assert not (tmp_path / "a" / ".checkpoint").exists()
    again = train_adapter(tiny_dir, _pairs(8), tmp_path / "b", config)
    assert again.manifest["metrics"] == result.manifest["metrics"]  # same data, settings and seed: the same adapter


def test_a_stopped_run_keeps_a_checkpoint_and_the_next_run_goes_on_from_it(tiny_dir: Path, tmp_path: Path) -> None:
    config = TuneConfig(epochs=2, batch_size=4, learning_rate=5e-3, rank=4, alpha=8, dropout=0.0, checkpoint_every=100)

    class Stop(Exception):
        pass

    def stop_at_three(done: int, total: int, loss: float) -> None:
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        train_adapter(tiny_dir, _pairs(8), tmp_path / "a", config, on_step=stop_at_three)
    assert (tmp_path / "a" / ".checkpoint" / "state.pt").is_file() and not is_adapter(tmp_path / "a")
    seen: list[int] = []
    resumed = train_adapter(tiny_dir, _pairs(8), tmp_path / "a", config, on_step=lambda d, t, loss: seen.append(d))
    assert resumed.resumed_from == 3 and seen == [4] and is_adapter(tmp_path / "a")
    whole = train_adapter(tiny_dir, _pairs(8), tmp_path / "b", config)
    assert resumed.manifest["metrics"]["loss_last_epoch"] == pytest.approx(whole.manifest["metrics"]["loss_last_epoch"], rel=1e-4)
    # Other data: the checkpoint is not this run's, it starts afresh.
    with pytest.raises(Stop):
        train_adapter(tiny_dir, _pairs(8), tmp_path / "c", config, on_step=stop_at_three)
    fresh = train_adapter(tiny_dir, _pairs(12), tmp_path / "c", config)
    assert fresh.resumed_from == 0


def test_a_trained_adapter_is_merged_into_the_writer_which_then_reads_no_examples(tiny_dir: Path, tmp_path: Path) -> None:
    import torch

    from core.llm.generator import load_generator
    from core.llm.grouped import engine_generate_fn

    config = TuneConfig(epochs=1, batch_size=4, learning_rate=5e-2, rank=4, alpha=8, dropout=0.0)
    train_adapter(tiny_dir, _pairs(4), tmp_path / "adapter", config, base_name=tiny_dir.name)
    base = load_generator(str(tiny_dir), device="cpu")
    tuned = load_generator(str(tiny_dir), device="cpu", adapter=tmp_path / "adapter")
    assert not base.tuned and tuned.tuned and tuned.describe().name == f"{tiny_dir.name} + adapter"
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(base.model.named_parameters())[name], dict(tuned.model.named_parameters())[name])
    assert engine_generate_fn(tuned).tuned and not engine_generate_fn(base).tuned
    # Trained on another model: refused with what to do, not merged into the wrong weights.
    manifest = json.loads((tmp_path / "adapter" / MANIFEST).read_text())
    (tmp_path / "adapter" / MANIFEST).write_text(json.dumps({**manifest, "base_model": "SomeOtherModel"}))
    from core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="trained on SomeOtherModel"):
        load_generator(str(tiny_dir), device="cpu", adapter=tmp_path / "adapter")


def test_the_adapter_setting_names_the_shipped_one_none_or_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ModelLoadError
    from core.llm import loading

    monkeypatch.setattr(loading, "SHIPPED_ADAPTER", tmp_path / "shipped")
    assert loading.resolve_adapter("shipped") is None  # none shipped yet: the base model with examples
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "adapter_config.json").write_text("{}")
    assert loading.resolve_adapter("shipped") == tmp_path / "shipped"
    assert loading.resolve_adapter("shipped", "/some/other/model") is None  # trained for the bundled model only
    assert loading.resolve_adapter("none") is None
    with pytest.raises(ModelLoadError, match="not an adapter folder"):
        loading.resolve_adapter(str(tmp_path / "missing"))


def test_a_tuned_writer_is_asked_without_few_shot_examples(catalog_store) -> None:
    from core.copy.variants import GenerationRequest, generate_variants

    with catalog_store.cursor() as cur:
        pid = cur.execute("SELECT product_id FROM products ORDER BY product_id LIMIT 1").fetchone()[0]
    asked: list[int] = []

    def writer(prompts, n, max_new_tokens, temperature, seed):  # noqa: ANN001, ANN202 - the documented five arguments
        asked.extend(len(p) for p in prompts)
        return [["Headline: Summit Water Bottle\nDescription: Keeps drinks cold for 24 hours."] * n for _ in prompts]

    writer.tuned = True  # type: ignore[attr-defined]
    generate_variants(catalog_store, writer, GenerationRequest(product_ids=(pid,), channel="google_rsa", n=1, max_rounds=1))
    assert asked and set(asked) == {2}  # system and request: no example turns
