"""Long work (writing copy for a catalog, later training the writer) as jobs beside the sessions.

A marketer starts a job and goes on browsing: the work runs on the server's one worker thread,
not in the page's script, so changing page, clicking or reloading does not stop it. Jobs run one
at a time in the order they were started, so two sessions' jobs share the one resident model
(queued, never a second copy). Each reports progress (done of total, a message, an ETA from the
pace so far); Stop ends it at its next report and keeps whatever it already saved.

The board lives in the server process: jobs outlive page reloads and sessions, not a server
restart (what they saved is in the database either way). Nothing here imports Streamlit;
``pages._resources.get_job_board`` makes the one board per process.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from core.errors import MarketLabError, NotFoundError

__all__ = ["ACTIVE", "Job", "JobBoard", "JobContext", "JobStopped"]

ACTIVE = ("queued", "running")


class JobStopped(MarketLabError):
    """Raised inside a job's work by ``JobContext.report`` once Stop was asked for. A MarketLabError,
    so the layers that wrap other errors (a model call wraps the model's) let it through as it is."""

    default_title = "Stopped"


@dataclass
class Job:
    job_id: str
    title: str  # "Google RSA for 12 products"
    owner: str  # who started it: the sidebar tells them when it ends
    total: int  # units of work (products, training steps)
    status: str = "queued"  # queued | running | done | stopped | failed
    done: float = 0.0  # units finished, fractional inside one
    message: str = ""
    result: str = ""  # what it left, in words: "12 drafts saved"
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stop_requested: bool = False
    seen: bool = False  # its owner has been told it ended
    unit: str = "product"  # what ``total`` counts, singular: "5 of 12 products", "20 of 60 steps"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far; None before the pace is known (nothing done yet)."""
        if self.status != "running" or not self.started or self.done <= 0:
            return None
        elapsed = (now or time.time()) - self.started
        return max(0.0, elapsed / self.done * (self.total - self.done))


class JobContext:
    """What a job's work gets: ``report`` its progress (and learn of a Stop), ``stopping`` to ask."""

    def __init__(self, board: JobBoard, job_id: str) -> None:
        self._board, self._job_id = board, job_id

    @property
    def stopping(self) -> bool:
        return self._board._get(self._job_id).stop_requested

    def report(self, done: float, message: str = "") -> None:
        """Progress: ``done`` units of the job's total. Raises JobStopped when Stop was asked for."""
        self._board._update(self._job_id, done=done, message=message or None)
        if self.stopping:
            raise JobStopped("Stopped at the user's request.")

    def keep(self, result: str) -> None:
        """What the job has left so far, in words ("8 drafts saved"): shown even if it is stopped later."""
        self._board._update(self._job_id, result=result)


Work = Callable[[JobContext], str]  # does the job; returns what it left, in words


class JobBoard:
    """The process's jobs and the one worker thread that runs them, in order."""

    def __init__(self, keep: int = 50) -> None:
        self._jobs: dict[str, Job] = {}
        self._work: dict[str, Work] = {}
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._keep = keep
        self._idle = threading.Event()
        self._idle.set()
        self._worker = threading.Thread(target=self._run, name="marketlab-jobs", daemon=True)
        self._worker.start()

    # ---- what pages and tests call
    def submit(self, title: str, owner: str, total: int, work: Work, unit: str = "product") -> Job:
        """Queue ``work``; it runs after the jobs started before it. Returns a snapshot of the job."""
        job = Job(f"job-{next(self._ids)}", title, owner, max(int(total), 1), unit=unit)
        with self._lock:
            self._jobs[job.job_id] = job
            self._work[job.job_id] = work
            self._idle.clear()
            self._forget_old()
        self._queue.put(job.job_id)
        return replace(job)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Snapshots of the jobs (of ``owner``, if given), newest first."""
        with self._lock:
            found = [replace(j) for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted(found, key=lambda j: j.created, reverse=True)

    def get(self, job_id: str) -> Job:
        return replace(self._get(job_id))

    def stop(self, job_id: str) -> None:
        """Ask a job to stop: a queued one never starts, a running one ends at its next report."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"No job {job_id!r} on this server.", title="Unknown job")
            if job.status == "queued":
                job.status, job.finished, job.result = "stopped", time.time(), "stopped before it started"
            job.stop_requested = True

    def mark_seen(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id].seen = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (tests, scripts); False on timeout."""
        return self._idle.wait(timeout)

    # ---- the worker
    def _get(self, job_id: str) -> Job:
        with self._lock:
            return self._jobs[job_id]

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs[job_id]
            for key, value in changes.items():
                if value is not None:
                    setattr(job, key, value)

    def _forget_old(self) -> None:
        ended = sorted((j for j in self._jobs.values() if not j.active), key=lambda j: j.created)
        for job in ended[: max(0, len(self._jobs) - self._keep)]:
            self._jobs.pop(job.job_id, None)

    def _run(self) -> None:
        while True:
            job_id = self._queue.get()
            with self._lock:
                job = self._jobs.get(job_id)
                work = self._work.pop(job_id, None)
                if job is None or work is None or job.status != "queued":
                    self._set_idle_if_done()
                    continue
                job.status, job.started = "running", time.time()
            status, result, error = "done", "", ""
            try:
                result = work(JobContext(self, job_id))
            except JobStopped:
                status = "stopped"
            except MarketLabError as e:
                status, error = "failed", str(e)
            except Exception as e:  # noqa: BLE001 - the worker must outlive any one job; the job says what broke
                status, error = "failed", f"{type(e).__name__}: {e}"
                traceback.print_exc()
            # This daemon thread waits for the next job with its locals alive: the finished work (and the Store,
            # cursors and model its closure holds) would outlive the interpreter's shutdown, which DuckDB then
            # reports as dozens of "nanobind: leaked …" lines. Let go of it before the job is said to be over.
            del work
            with self._lock:
                job.status, job.finished = status, time.time()
                job.result = result or job.result
                job.error = error
                self._set_idle_if_done()

    def _set_idle_if_done(self) -> None:
        if not any(j.active for j in self._jobs.values()):
            self._idle.set()
