"""OpenAIEngine against a small fake OpenAI-compatible server on 127.0.0.1 (http.server in a thread).

The fake answers /v1/chat/completions the way vLLM does (``n`` choices, usage totals) and
can be told to misbehave: HTTP errors, non-JSON, missing fields, too few choices, slowness.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from core.llm import Engine, LLMServerError, OpenAIEngine, load_engine


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out has hung up; writing to it fails, and that is expected

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, json.dumps({"object": "list", "data": [{"id": "HuggingFaceTB/SmolLM2-135M-Instruct"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "no such route"}}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        mode = self.server.mode
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": {"message": "Not Found"}}')
        if mode == "http500":
            return self._send(500, json.dumps({"error": {"message": "CUDA out of memory on the server", "type": "internal"}}).encode())
        if mode == "http401":
            return self._send(401, b'{"error": {"message": "invalid api key"}}')
        if mode == "notjson":
            return self._send(200, b"<html>502 Bad Gateway</html>", "text/html")
        if mode == "nochoices":
            return self._send(200, b'{"id": "x", "object": "chat.completion"}')
        if mode == "slow":
            time.sleep(1.0)
        n = body.get("n", 1)
        if mode == "toofew":
            n = 1
        last = body["messages"][-1]["content"]
        choices = [
            {"index": k, "message": {"role": "assistant", "content": f" {last[:20]} #{k} seed={body.get('seed')} "}, "finish_reason": "stop" if k else "length"}
            for k in reversed(range(n))  # out of order on purpose: the engine sorts by index
        ]
        usage = {"prompt_tokens": 17, "completion_tokens": 10 * n + 1, "total_tokens": 17 + 10 * n + 1}
        self._send(200, json.dumps({"id": "cmpl-1", "object": "chat.completion", "model": body["model"], "choices": choices, "usage": usage}).encode())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_variants_of_each_prompt_come_from_one_request(server: FakeServer) -> None:
    engine = OpenAIEngine(server.url, model="HuggingFaceTB/SmolLM2-135M-Instruct")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Headline for a bottle"}]
    results = engine.generate([chat, "Subject line"], n=3, max_new_tokens=30, temperature=0.8, top_p=0.9, seed=100)
    assert [(r.prompt_index, r.variant_index) for r in results] == [(p, v) for p in range(2) for v in range(3)]
    assert results[0].text == "Headline for a bottl #0 seed=100" and results[3].text == "Subject line #0 seed=101"
    assert [r.finish_reason for r in results[:3]] == ["length", "stop", "stop"]
    assert [r.completion_tokens for r in results[:3]] == [11, 10, 10]  # the usage total, shared out
    assert all(r.prompt_tokens == 17 and r.seed == 100 and r.batch_rows == 3 for r in results)
    bodies = sorted((r["body"] for r in server.requests), key=lambda b: b["seed"])
    assert len(bodies) == 2 and all(r["path"] == "/v1/chat/completions" for r in server.requests)
    assert bodies[0] == {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "messages": chat,
        "n": 3,
        "max_tokens": 30,
        "temperature": 0.8,
        "top_p": 0.9,
        "seed": 100,
    }
    assert bodies[1]["messages"] == [{"role": "user", "content": "Subject line"}]  # plain text is one user turn


def test_stop_strings_are_sent_at_most_four(server: FakeServer) -> None:
    engine = OpenAIEngine(server.url)
    engine.generate(["Headline"], n=1, max_new_tokens=8, seed=1, stop=["\n\n", "\nHeadline 4", "", "a", "b", "c"])
    assert server.requests[-1]["body"]["stop"] == ["\n\n", "\nHeadline 4", "a", "b"]


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_url_with_or_without_v1(server: FakeServer, suffix: str) -> None:
    engine = OpenAIEngine(server.url + suffix, api_key="sk-test")
    assert engine.base_url == server.url + "/v1"
    assert engine.models() == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    engine.generate(["hi"], seed=1)
    assert server.requests[-1]["auth"] == "Bearer sk-test"


def test_describe_and_protocol(server: FakeServer) -> None:
    engine = OpenAIEngine(server.url)
    info = engine.describe()
    assert (info.name, info.device, info.parameters) == ("SmolLM2-135M-Instruct", "server", None)
    assert info.summary == "SmolLM2-135M-Instruct · server" and server.url in info.source
    assert isinstance(engine, Engine)


def test_load_engine_picks_the_server_when_a_url_is_set(server: FakeServer) -> None:
    settings = SimpleNamespace(model="my-served-model", device="auto", llm_url=server.url, model_cache=None)
    engine = load_engine(settings)
    assert isinstance(engine, OpenAIEngine) and engine.model == "my-served-model"


def test_batches_progress_and_cancel(server: FakeServer) -> None:
    prompts = [f"Product {i}" for i in range(5)]
    progress: list[float] = []
    batches = list(OpenAIEngine(server.url).generate_batches(prompts, n=2, batch_size=2, seed=7, progress=lambda f, m: progress.append(f)))
    assert [r.prompt_index for b in batches for r in b] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert progress == [0.4, 0.8, 1.0]
    seeds = sorted(r["body"]["seed"] for r in server.requests)
    assert seeds == [7, 8, 9, 10, 11]  # prompt i is sent with seed + i, however the list is batched

    server.requests.clear()
    got = list(OpenAIEngine(server.url).generate_batches(prompts, batch_size=2, cancel=lambda: len(server.requests) >= 2))
    assert len(got) == 1 and len(server.requests) == 2


def test_each_answer_is_reported_on_the_calling_thread(server: FakeServer) -> None:
    seen: list[tuple[int, int, str]] = []
    engine = OpenAIEngine(server.url)
    results = engine.generate([f"Product {i}" for i in range(4)], n=2, seed=3,
                              on_step=lambda done, total: seen.append((done, total, threading.current_thread().name)))
    assert [(d, t) for d, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert {name for _, _, name in seen} == {threading.current_thread().name}  # Streamlit calls need the script thread
    assert [r.prompt_index for r in results] == [0, 0, 1, 1, 2, 2, 3, 3]  # still in prompt order

    class Stopped(BaseException):
        pass

    def stop(done: int, total: int) -> None:
        raise Stopped

    server.requests.clear()
    with pytest.raises(Stopped):
        OpenAIEngine(server.url, concurrency=1).generate([f"Product {i}" for i in range(6)], seed=3, on_step=stop)
    assert len(server.requests) < 6  # the prompts still queued were never sent


def test_server_down_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = OpenAIEngine(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(LLMServerError) as info:
        engine.generate(["hi"])
    assert info.value.title == "The language model server could not be reached"
    assert f"127.0.0.1:{port}" in info.value.msg and "MARKETLAB_LLM_URL" in info.value.msg


def test_slow_server_times_out(server: FakeServer) -> None:
    server.mode = "slow"
    with pytest.raises(LLMServerError, match="within 0.2 s") as info:
        OpenAIEngine(server.url, timeout=0.2).generate(["hi"])
    assert info.value.title == "The language model server could not be reached"


@pytest.mark.parametrize(
    ("mode", "title", "words"),
    [
        ("http500", "The language model server refused the request", "HTTP 500 Internal Server Error: CUDA out of memory on the server"),
        ("http401", "The language model server refused the request", "Check the API key"),
        ("notjson", "The language model server sent an answer MarketLab cannot read", "not JSON: '<html>502 Bad Gateway</html>'"),
        ("nochoices", "The language model server sent an answer MarketLab cannot read", "no choices[].message.content"),
        ("toofew", "The language model server sent an answer MarketLab cannot read", "Asked for 3 variants, the server returned 1"),
    ],
)
def test_bad_answers_are_clear_errors(server: FakeServer, mode: str, title: str, words: str) -> None:
    server.mode = mode
    with pytest.raises(LLMServerError) as info:
        OpenAIEngine(server.url).generate(["hi"], n=3)
    assert info.value.title == title
    assert words in info.value.msg


def test_wrong_path_and_bad_url(server: FakeServer) -> None:
    with pytest.raises(LLMServerError, match="HTTP 404") as info:
        OpenAIEngine(server.url + "/api").generate(["hi"])
    assert "MARKETLAB_LLM_URL" in info.value.msg
    with pytest.raises(LLMServerError, match="must start with http"):
        OpenAIEngine("localhost:8000")
