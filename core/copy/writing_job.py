"""Writing copy for many products as a job (``core.jobs``): the page starts it and the marketer browses on.

The products are written a few at a time, and each call's drafts are saved before the next
starts, so a Stop (or a failure) keeps every draft already saved; only the products being
written at that moment are not. Progress is in products: "5 of 12 products", with an ETA.
"""

from __future__ import annotations

from dataclasses import replace

from core.copy.variants import GenerateFn, GenerationRequest, generate_variants
from core.jobs import JobContext, Work
from core.store import Store

__all__ = ["PRODUCTS_PER_CALL", "write_copy_work"]

PRODUCTS_PER_CALL = 8  # each call's variants are saved before the next starts


def _drafts(n: int) -> str:
    return f"{n:,} draft{'' if n == 1 else 's'} saved"


def write_copy_work(store: Store, generate_fn: GenerateFn, request: GenerationRequest,
                    per_call: int = PRODUCTS_PER_CALL) -> Work:
    """The job's work: ``request``'s products, ``per_call`` at a time, every call's drafts saved.

    The request is checked now, so a bad one is refused when the job is asked for, not later.
    """
    request.check()
    store.require_editor("writing copy")
    ids = list(request.product_ids)
    chunks = [ids[i:i + per_call] for i in range(0, len(ids), per_call)]

    def work(ctx: JobContext) -> str:
        made, done = 0, 0
        for chunk in chunks:
            def progress(fraction: float, message: str, start: int = done, size: int = len(chunk)) -> None:
                ctx.report(start + size * min(max(fraction, 0.0), 1.0), message)

            made += len(generate_variants(store, generate_fn, replace(request, product_ids=tuple(chunk)),
                                          progress=progress, save=True))
            done += len(chunk)
            ctx.keep(_drafts(made))
            ctx.report(done, f"{done} of {len(ids)} products written")
        return _drafts(made)

    return work
