"""The second engine: an OpenAI-compatible server (vLLM, TGI, llama.cpp server) by URL.

For teams that outgrow one machine. Same interface as the local ``Generator``: one
``/v1/chat/completions`` request per prompt asks for all its variants at once (``n``), and
requests for different prompts run concurrently so the server can batch them. Standard
library only (urllib), so the GPU box and the CLI need nothing more.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from core.errors import LLMServerError
from core.llm.loading import DEFAULT_MODEL
from core.llm.types import BatchedGeneration, GenerationResult, ModelInfo, Prompt, StepFn, as_chat, check_params, new_seed

UNREACHABLE = "The language model server could not be reached"
UNREADABLE = "The language model server sent an answer MarketLab cannot read"
REFUSED = "The language model server refused the request"


class OpenAIEngine(BatchedGeneration):
    """Generation through ``{url}/v1/chat/completions``; ``url`` may or may not end in ``/v1``."""

    def __init__(self, url: str, *, model: str = DEFAULT_MODEL, api_key: str | None = None, timeout: float = 120.0, concurrency: int = 8) -> None:
        url = (url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise LLMServerError(f"MARKETLAB_LLM_URL must start with http:// or https://, got {url!r}.", title="Invalid setting")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.model = model or DEFAULT_MODEL
        self.api_key = api_key
        self.timeout = timeout
        self.concurrency = max(1, concurrency)

    def describe(self) -> ModelInfo:
        return ModelInfo(name=self.model.split("/")[-1], source=f"server {self.base_url}", device="server", dtype="", parameters=None)

    def models(self) -> list[str]:
        """Model ids the server offers (``GET /v1/models``); a quick check that the URL is right."""
        answer = self._request("GET", "/models", None)
        try:
            return [str(m["id"]) for m in answer["data"]]
        except (KeyError, TypeError) as e:
            raise LLMServerError(f"{self.base_url}/models did not return a list of models.", title=UNREADABLE) from e

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
        """``n`` variants per prompt, ordered by (prompt, variant); prompt i is sent with ``seed + i``.

        ``on_step(answered, len(prompts))`` after each answer, on the calling thread.

        Servers report completion tokens for the whole request, so with ``n > 1`` each
        variant's ``completion_tokens`` is that total shared out evenly (an estimate).
        """
        check_params(n, max_new_tokens, temperature, top_p)
        if not prompts:
            return []
        seed = new_seed() if seed is None else int(seed)
        chats = [as_chat(p) for p in prompts]

        def one(index: int) -> list[GenerationResult]:
            body = {
                "model": self.model,
                "messages": chats[index],
                "n": n,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed + index,
            }
            if stop:
                body["stop"] = [s for s in stop if s][:4]  # the OpenAI API takes at most four
            started = time.perf_counter()
            answer = self._request("POST", "/chat/completions", body)
            return self._results(answer, index, n, time.perf_counter() - started, seed)

        if len(chats) == 1:
            results = one(0)
            if on_step is not None:
                on_step(1, 1)
            return results
        answers: dict[int, list[GenerationResult]] = {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
            futures = {pool.submit(one, i): i for i in range(len(chats))}
            try:
                for future in as_completed(futures):
                    answers[futures[future]] = future.result()
                    if on_step is not None:
                        on_step(len(answers), len(chats))
            except BaseException:
                for future in futures:  # a Stop or a failure: requests not yet sent stay unsent
                    future.cancel()
                raise
        return [r for i in range(len(chats)) for r in answers[i]]

    # -- HTTP ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise LLMServerError(self._http_error_message(e, url), title=REFUSED) from e
        except urllib.error.URLError as e:
            reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else str(e.reason)
            if isinstance(e.reason, TimeoutError):
                reason = f"no answer within {self.timeout:g} s"
            raise LLMServerError(
                f"Nothing answered at {self.base_url} ({reason}). Start the server, check MARKETLAB_LLM_URL, "
                "or clear it to use the local model.",
                title=UNREACHABLE,
            ) from e
        except TimeoutError as e:
            raise LLMServerError(f"{self.base_url} did not answer within {self.timeout:g} s. The server may be overloaded.", title=UNREACHABLE) from e
        except (ConnectionError, OSError) as e:  # reset or closed mid-answer
            raise LLMServerError(f"The connection to {self.base_url} broke: {e}.", title=UNREACHABLE) from e
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LLMServerError(f"{url} answered with something that is not JSON: {_preview(raw)}", title=UNREADABLE) from e

    @staticmethod
    def _http_error_message(e: urllib.error.HTTPError, url: str) -> str:
        detail = ""
        try:
            payload = json.loads(e.read() or b"{}")
            err = payload.get("error", payload) if isinstance(payload, dict) else payload
            detail = err.get("message", "") if isinstance(err, dict) else str(err)
        except Exception:
            pass
        hint = {
            401: " Check the API key.",
            403: " Check the API key.",
            404: " Check MARKETLAB_LLM_URL: it should be the server's root or its /v1 address, and the model name must be one the server serves.",
        }.get(e.code, "")
        return f"{url} answered HTTP {e.code} {e.reason}" + (f": {detail}" if detail else ".") + hint

    def _results(self, answer: Any, prompt_index: int, n: int, seconds: float, seed: int) -> list[GenerationResult]:
        try:
            choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] for c in choices]
            reasons = [c.get("finish_reason") or "stop" for c in choices]
            if not all(isinstance(t, str) for t in texts):
                raise TypeError("content is not text")
        except (KeyError, TypeError, AttributeError) as e:
            raise LLMServerError(f"The answer has no choices[].message.content ({e}): {_preview(json.dumps(answer))}", title=UNREADABLE) from e
        if len(texts) != n:
            raise LLMServerError(f"Asked for {n} variants, the server returned {len(texts)}. It may not support n > 1.", title=UNREADABLE)
        usage = answer.get("usage") or {}
        prompt_tokens = _int(usage.get("prompt_tokens"))
        total = _int(usage.get("completion_tokens"))
        shares = [total // n + (1 if k < total % n else 0) for k in range(n)]
        return [
            GenerationResult(
                prompt_index=prompt_index,
                variant_index=k,
                text=text.strip(),
                prompt_tokens=prompt_tokens,
                completion_tokens=shares[k],
                finish_reason=reasons[k],
                seconds=seconds,
                batch_rows=n,
                seed=seed,
                model=self.model,
            )
            for k, text in enumerate(texts)
        ]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _preview(raw: bytes | str, limit: int = 120) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
