"""Jobs beside the sessions (issue 14): one at a time in order, progress with an ETA, Stop keeps what was saved."""

from __future__ import annotations

import threading

import pytest

from core.copy.variants import GenerationRequest, VariantFilter, list_variants
from core.copy.writing_job import write_copy_work
from core.errors import MarketLabError
from core.jobs import JobBoard, JobContext
from core.sample_data import build_demo
from core.store import Store


def model(prompts, n, max_new_tokens, temperature, seed):
    return [["Headline: Cold Water on Every Trail\nHeadline 2: Built for Long Hikes\n"
             "Description: Insulated steel keeps water cold."] * n for _ in prompts]


@pytest.fixture
def board():
    return JobBoard()


def test_jobs_run_one_at_a_time_in_the_order_they_were_started(board: JobBoard) -> None:
    order: list[str] = []
    running = threading.Lock()

    def work(name: str):
        def run(ctx: JobContext) -> str:
            assert running.acquire(blocking=False), "two jobs ran at once"
            order.append(name)
            ctx.report(1, f"{name} done")
            running.release()
            return f"{name} finished"
        return run

    jobs = [board.submit(name, "ana", 1, work(name)) for name in ("first", "second", "third")]
    assert board.wait(10)
    assert order == ["first", "second", "third"]
    assert [board.get(j.job_id).result for j in jobs] == ["first finished", "second finished", "third finished"]
    assert all(board.get(j.job_id).status == "done" for j in jobs)


def test_progress_and_an_eta_are_seen_while_it_runs_and_stop_ends_it_keeping_what_it_kept(board: JobBoard) -> None:
    halfway, release = threading.Event(), threading.Event()

    def work(ctx: JobContext) -> str:
        ctx.report(2, "2 of 4 products written")
        ctx.keep("6 drafts saved")
        halfway.set()
        release.wait(10)
        ctx.report(3, "3 of 4")  # Stop was asked for meanwhile: this report ends it
        return "never"

    job = board.submit("RSA for 4 products", "ana", 4, work)
    assert halfway.wait(10)
    seen = board.get(job.job_id)
    assert (seen.status, seen.fraction, seen.message) == ("running", 0.5, "2 of 4 products written")
    assert seen.eta_seconds() is not None
    board.stop(job.job_id)
    release.set()
    assert board.wait(10)
    ended = board.get(job.job_id)
    assert (ended.status, ended.result) == ("stopped", "6 drafts saved")


def test_a_failed_job_says_why_and_the_next_one_still_runs(board: JobBoard) -> None:
    def broken(ctx: JobContext) -> str:
        raise RuntimeError("CUDA out of memory")

    failed = board.submit("broken", "ana", 1, broken)
    after = board.submit("after", "ana", 1, lambda ctx: "fine")
    assert board.wait(10)
    assert board.get(failed.job_id).status == "failed" and "CUDA out of memory" in board.get(failed.job_id).error
    assert board.get(after.job_id).result == "fine"
    assert [j.title for j in board.jobs("ana")] == ["after", "broken"]  # newest first
    with pytest.raises(MarketLabError, match="No job"):
        board.stop("job-404")


def test_writing_copy_as_a_job_saves_every_products_drafts(tmp_path, board: JobBoard) -> None:
    store = Store(tmp_path / "jobs.duckdb")
    build_demo(store, scale=0.02)
    ids = ("P0001", "P0002", "P0003")
    job = board.submit("RSA", "ana", len(ids), write_copy_work(store, model, GenerationRequest(ids, "google_rsa", n=1),
                                                                 per_call=2))
    assert board.wait(60)
    done = board.get(job.job_id)
    assert done.status == "done", done.error
    assert done.result == "3 drafts saved" and done.fraction == 1.0
    saved = list_variants(store, VariantFilter(product_ids=ids, channel="google_rsa"))
    assert sorted(v.product_id for v in saved) == list(ids)
    store.close()


def test_a_bad_request_is_refused_when_the_job_is_asked_for(tmp_path) -> None:
    store = Store(tmp_path / "jobs.duckdb")
    build_demo(store, scale=0.02)
    with pytest.raises(MarketLabError):
        write_copy_work(store, model, GenerationRequest(("P0001",), "telegram"))
    store.close()


def test_a_finished_job_lets_go_of_what_its_work_held(board: JobBoard) -> None:
    """The worker waits for the next job with its locals alive: a Store its last job held would outlive the
    interpreter, and DuckDB prints dozens of "nanobind: leaked" lines at shutdown (issue 16)."""
    import gc
    import weakref

    class Held:  # stands for the Store and model a writing job's closure holds
        pass

    held = Held()
    alive = weakref.ref(held)

    def work(ctx: JobContext, thing: Held = held) -> str:
        return "done"

    board.submit("hold", "ana", 1, work)
    del held, work
    assert board.wait(10)
    gc.collect()
    assert alive() is None
