"""The harness: how big a run is, the emulator it runs against, best-of timing and the collector's
share of a run, import times in fresh interpreters, and LangChain's own floors, measured in the
same run as the models they bound."""

from __future__ import annotations

import compileall
import gc
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks import ROOT
from haufe_copilot.protocol.assistant import ASSISTANT_CHAT_PATH, ASSISTANT_STREAM_PATH

KEY = "sk-bench-" + secrets.token_hex(8)
QUESTION = "Wie viele Urlaubstage stehen mir zu?"
FLOOR_A = "LangChain floor A (prepared chunk objects, no I/O)"
FLOOR_B = "LangChain floor B (a chunk built per delta, no I/O)"
FLOOR_C = "LangChain floor C (floor B over the raw httpx stream)"
INVOKE_FLOOR = "LangChain's own invoke + the raw HTTP call"

#: A candidate at one size: given the number of deltas, the run to time (built before the timing).
Candidate = Callable[[int], Callable[[], None]]


@dataclass(frozen=True)
class Scale:
    """How much each measure does. `make bench` runs FULL; the test suite runs QUICK to show
    the harness works end to end (its figures mean nothing at that size)."""

    sizes: tuple[int, int, int] = (1_000, 5_000, 20_000)
    tool_deltas: int = 5_000
    calls: int = 200
    streams: int = 1_000
    deltas_per_stream: int = 100
    memory_deltas: int = 20_000  # of 1,000 characters each
    repeats: int = 5
    import_repeats: int = 9

    @property
    def long_repeats(self) -> int:
        """Repetitions of the longest runs (the largest size, the tool stream): fewer."""
        return max(1, self.repeats - 2)

    def repeats_at(self, size: int) -> int:
        return self.repeats if size < self.largest else self.long_repeats

    @property
    def largest(self) -> int:
        return self.sizes[-1]

    @property
    def size_label(self) -> str:
        return " / ".join(short(n) for n in self.sizes)


def short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


FULL = Scale()
QUICK = Scale(
    sizes=(100, 200, 400),
    tool_deltas=100,
    calls=5,
    streams=20,
    deltas_per_stream=10,
    memory_deltas=200,
    repeats=1,
    import_repeats=1,
)


@dataclass(frozen=True)
class Run:
    """What every measure against the emulator needs."""

    url: str
    assistant_id: str
    scale: Scale


@contextmanager
def emulator() -> Iterator[str]:
    """The emulator in a process of its own, accepting `KEY`: its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HAUFE_COPILOT_EMULATOR_KEYS": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "haufe_copilot.cli", "emulator", "--port", str(port), "--lenient"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def bulk(n: int, fragments: int = 0) -> dict[str, str]:
    """The headers that make the emulator answer with `n` prepared deltas in large writes."""
    headers = {"x-emulator-bulk": str(n)}
    if fragments:
        headers["x-emulator-bulk-tool-fragments"] = str(fragments)
    return headers


# -- timing -------------------------------------------------------------------------------------


def best_of(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def consume(stream: Callable[[], Iterable[Any]]) -> Callable[[], None]:
    """A run that iterates what `stream()` returns to its end."""

    def run() -> None:
        for _ in stream():
            pass

    return run


@dataclass
class GcProfile:
    """One run seen by the cyclic garbage collector: how many full (generation 2) collections
    it caused and how long the collector ran, against the run's whole time."""

    full_collections: int
    collector_seconds: float
    total_seconds: float


def gc_profile(run: Callable[[], Any]) -> GcProfile:
    full_collections, collector_seconds, started_at = 0, 0.0, 0.0

    def watch(phase: str, info: dict[str, Any]) -> None:
        nonlocal full_collections, collector_seconds, started_at
        if phase == "start":
            started_at = time.perf_counter()
            return
        collector_seconds += time.perf_counter() - started_at
        full_collections += info["generation"] == 2

    gc.collect()
    gc.callbacks.append(watch)
    try:
        started = time.perf_counter()
        run()
        total = time.perf_counter() - started
    finally:
        gc.callbacks.remove(watch)
    return GcProfile(full_collections, collector_seconds, total)


def langchain_floors(run: Run | None = None) -> dict[str, Candidate]:
    """LangChain itself: a model that yields prepared chunk objects (floor A), or builds one per
    delta from prepared text the way an integration must (floor B), both without I/O; and, given
    a run, the least a LangChain integration of the stream can do (floor C): floor B's chunk for
    every line of the same answer, read with raw httpx `iter_lines` + `json.loads`."""
    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk

    def floor(build: bool) -> Candidate:
        def make(n: int) -> Callable[[], None]:
            texts = ["Wort "] * n
            prepared = (
                []
                if build
                else [ChatGenerationChunk(message=AIMessageChunk(content=t, id="floor")) for t in texts]
            )

            def chunks(_: list[Any]) -> Iterator[ChatGenerationChunk]:
                if not build:
                    yield from prepared
                    return
                for text in texts:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text, id="floor"))

            model = _floor_model(stream=chunks)
            return consume(lambda: model.stream(QUESTION))

        return make

    floors = {FLOOR_A: floor(False), FLOOR_B: floor(True)}
    if run is not None:
        http = httpx.Client(timeout=60)

        def over_http(n: int) -> Callable[[], None]:
            body = assistant_body(run)

            def chunks(_: list[Any]) -> Iterator[ChatGenerationChunk]:
                with http.stream(
                    "POST", run.url + ASSISTANT_STREAM_PATH, json=body, headers={"api-key": KEY, **bulk(n)}
                ) as response:
                    for line in response.iter_lines():
                        if line:
                            data = json.loads(line)
                            yield ChatGenerationChunk(
                                message=AIMessageChunk(
                                    content=data["delta"]["content"], id=data["message_id"]
                                )
                            )

            model = _floor_model(stream=chunks)
            return consume(lambda: model.stream(QUESTION))

        floors[FLOOR_C] = over_http
    return floors


def invoke_floor(run: Run, http: httpx.Client) -> Callable[[], Any]:
    """LangChain's own `invoke` around the raw HTTP call (one POST, `json.loads`, an `AIMessage`):
    the least a LangChain integration of the blocking answer can cost."""
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    body = assistant_body(run)

    def generate(_: list[Any]) -> ChatResult:
        data = http.post(run.url + ASSISTANT_CHAT_PATH, json=body, headers={"api-key": KEY}).json()
        message = AIMessage(content=data["content"], id=data["id"])
        return ChatResult(generations=[ChatGeneration(message=message)])

    model = _floor_model(generate=generate)
    return lambda: model.invoke(QUESTION)


def assistant_body(run: Run) -> dict[str, Any]:
    """The request body of every raw call to the Assistant API: the benchmark's one question."""
    return {"assistant_id": run.assistant_id, "messages": [{"role": "user", "content": QUESTION}]}


def _floor_model(
    *,
    stream: Callable[[list[Any]], Iterator[Any]] | None = None,
    generate: Callable[[list[Any]], Any] | None = None,
) -> Any:
    """A `BaseChatModel` whose `_stream` or `_generate` is the given function of the messages."""
    from langchain_core.language_models import BaseChatModel

    class Floor(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "floor"

        def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            if generate is None:
                raise NotImplementedError
            return generate(messages)

        def _stream(self, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
            assert stream is not None
            return stream(messages)

    return Floor()


# -- imports ------------------------------------------------------------------------------------


def compile_our_packages() -> None:
    """Write our packages' bytecode, as installing a wheel does. Without it (an editable
    install under PYTHONDONTWRITEBYTECODE) every fresh interpreter would compile our sources
    while the anchors load theirs from bytecode."""
    for package in ("haufe_copilot", "langchain_haufe", "llama_index_haufe", "llama_index"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def import_time(statement: str, repeats: int) -> float:
    """The best of `repeats` fresh interpreters running `statement`, in seconds."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(result.stdout.strip()))
    return min(times)


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after `statement`."""
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())
