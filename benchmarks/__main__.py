"""`make bench`: what each integration adds on top of the network, side by side in one run.

Starts the emulator in its own process (bulk mode: prepared answers in large writes, so the
server is not what is measured), then measures, best of several repetitions:

1. streaming cost per delta at 1,000, 5,000 and 20,000 deltas: raw httpx, our core client,
   `ChatHaufeCopilot.stream`, `ChatOpenAI.stream`, our LlamaIndex `stream_chat`,
   `OpenAILike.stream_chat`, and LangChain's own floor (a model yielding prepared chunks);
2. the same SSE body for both: `ChatHaufeCopilot` with tools bound against `ChatOpenAI`, text
   and then a tool call whose arguments come in 200 fragments;
3. blocking overhead over raw httpx: `invoke` against `ChatOpenAI.invoke`, LlamaIndex `chat`
   against `OpenAILike.chat`;
4. 1,000 concurrent `astream` calls of 100 deltas on one event loop: wall time, errors, peak
   open connections, against `ChatOpenAI.astream`;
5. import time of what a user writes, each in a fresh interpreter;
6. peak memory while the core client streams a 20 MB answer without keeping it;
7. one quota shared by a fleet of processes through Redis, against `InMemoryRateLimiter` in
   each process (benchmarks/quota.py, also runnable alone).

Prints one table of figures and targets and writes it to benchmarks/RESULTS.md and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import gc
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-" + secrets.token_hex(8)
QUESTION = "Wie viele Urlaubstage stehen mir zu?"
TOOL_QUESTION = "Wie ist das Wetter in Berlin? Nutze get_weather."


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

    @property
    def largest(self) -> int:
        return self.sizes[-1]

    @property
    def size_label(self) -> str:
        return " / ".join(_short(n) for n in self.sizes)


def _short(n: int) -> str:
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
SCALE = FULL
FLOOR_A = "LangChain floor A (prepared chunk objects, no I/O)"
FLOOR_B = "LangChain floor B (a chunk built per delta, no I/O)"
GC_PROFILED = ("ChatHaufeCopilot.stream", "ChatOpenAI.stream (anchor)", FLOOR_B)


@dataclass
class Row:
    what: str
    figure: str
    target: str = ""
    met: bool | None = None


ROWS: list[Row] = []


def record(what: str, figure: str, target: str = "", met: bool | None = None) -> None:
    ROWS.append(Row(what, figure, target, met))
    mark = "" if met is None else ("  ok" if met else "  MISSED")
    print(f"{what:<62} {figure:>22}  {target}{mark}", flush=True)


def best_of(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


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


# -- the server -------------------------------------------------------------------------------


@contextmanager
def emulator() -> Iterator[str]:
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


# -- 1. streaming cost per delta -----------------------------------------------------------------


def bulk(n: int, fragments: int = 0) -> dict[str, str]:
    headers = {"x-emulator-bulk": str(n)}
    if fragments:
        headers["x-emulator-bulk-tool-fragments"] = str(fragments)
    return headers


def streaming(url: str, assistant_id: str) -> tuple[dict[str, dict[int, float]], dict[str, GcProfile]]:
    """Seconds per delta, for each candidate and size, and the collector's share of the longest run
    for the LangChain candidates. Every candidate is built before the timing (a model, a
    client, its connection): only the streaming itself is measured."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk
    from langchain_openai import ChatOpenAI
    from pydantic import PrivateAttr

    from haufe_copilot import HaufeCopilotClient
    from langchain_haufe import ChatHaufeCopilot

    messages = [{"role": "user", "content": QUESTION}]
    body = {"assistant_id": assistant_id, "messages": messages}

    class Floor(BaseChatModel):
        """LangChain itself, no I/O: yields prepared chunk objects (A), or builds one per delta
        from prepared text the way an integration must (B)."""

        build: bool = False
        _prepared: list[Any] = PrivateAttr(default_factory=list)

        @property
        def _llm_type(self) -> str:
            return "floor"

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            if not self.build:
                yield from self._prepared
                return
            for text in self._prepared:
                yield ChatGenerationChunk(message=AIMessageChunk(content=text, id="floor"))

    def consume(stream: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in stream():
                pass

        return run

    http = httpx.Client(timeout=60)
    core = HaufeCopilotClient(api_key=KEY, base_url=url)

    def raw(n: int) -> Callable[[], None]:
        def run() -> None:
            with http.stream(
                "POST",
                url + "/agents/v1/chat/completions/stream",
                json=body,
                headers={"api-key": KEY, **bulk(n)},
            ) as response:
                for line in response.iter_lines():
                    if line:
                        json.loads(line)

        return run

    def ours_core(n: int) -> Callable[[], None]:
        return consume(
            lambda: core.assistant.stream(assistant_id=assistant_id, messages=messages, extra_headers=bulk(n))
        )

    def ours_langchain(n: int) -> Callable[[], None]:
        model = ChatHaufeCopilot(
            api_key=KEY, base_url=url, assistant_id=assistant_id, default_headers=bulk(n)
        )
        return consume(lambda: model.stream(QUESTION))

    def openai_langchain(n: int) -> Callable[[], None]:
        model = ChatOpenAI(
            base_url=url + "/api/v1",
            api_key=KEY,
            model="haufe-copilot-default",
            default_headers={"Accept": "text/event-stream", **bulk(n)},
        )
        return consume(lambda: model.stream(QUESTION))

    def floor(build: bool) -> Callable[[int], Callable[[], None]]:
        def make(n: int) -> Callable[[], None]:
            model = Floor(build=build)
            model._prepared = (
                ["Wort "] * n
                if build
                else [
                    ChatGenerationChunk(message=AIMessageChunk(content="Wort ", id="floor")) for _ in range(n)
                ]
            )
            return consume(lambda: model.stream(QUESTION))

        return make

    candidates: dict[str, Callable[[int], Callable[[], None]]] = {
        "raw httpx iter_lines + json.loads": raw,
        "haufe_copilot core client": ours_core,
        "ChatHaufeCopilot.stream": ours_langchain,
        "ChatOpenAI.stream (anchor)": openai_langchain,
        FLOOR_A: floor(False),
        FLOOR_B: floor(True),
    }
    try:
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

        from llama_index_haufe import HaufeCopilot

        chat = [ChatMessage(role="user", content=QUESTION)]

        def ours_llama(n: int) -> Callable[[], None]:
            llm = HaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id, default_headers=bulk(n))
            return consume(lambda: llm.stream_chat(chat))

        def openai_like(n: int) -> Callable[[], None]:
            llm = OpenAILike(
                api_base=url + "/api/v1",
                api_key=KEY,
                model="haufe-copilot-default",
                is_chat_model=True,
                default_headers={"Accept": "text/event-stream", **bulk(n)},
            )
            return consume(lambda: llm.stream_chat(chat))

        candidates["llama_index_haufe HaufeCopilot.stream_chat"] = ours_llama
        candidates["OpenAILike.stream_chat (anchor)"] = openai_like
    except ImportError as exc:
        print(f"(LlamaIndex rows left out: {exc})")
    results: dict[str, dict[int, float]] = {}
    profiles: dict[str, GcProfile] = {}
    for name, make in candidates.items():
        results[name] = {}
        for n in SCALE.sizes:
            run = make(n)
            run()  # warm: imports, the connection
            results[name][n] = best_of(SCALE.repeats if n < SCALE.largest else SCALE.long_repeats, run) / n
            if n == SCALE.largest and name in GC_PROFILED:
                profiles[name] = gc_profile(run)
    http.close()
    core.close()
    return results, profiles


def tools_same_endpoint(url: str) -> tuple[float, float]:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from langchain_haufe import ChatHaufeCopilot

    @tool
    def get_weather(city: str) -> str:
        """Das Wetter einer Stadt."""
        return "sonnig"

    n, fragments = SCALE.tool_deltas, 200
    headers = {"Accept": "text/event-stream", **bulk(n, fragments)}
    ours = ChatHaufeCopilot(api_key=KEY, base_url=url, default_headers=headers).bind_tools([get_weather])
    anchor = ChatOpenAI(
        base_url=url + "/api/v1",
        api_key=KEY,
        model="haufe-copilot-default",
        default_headers=headers,
    ).bind_tools([get_weather])

    def run(model: Any) -> None:
        chunks = list(model.stream(TOOL_QUESTION))
        merged = chunks[0] + chunks[1:]  # merged once: adding chunk by chunk would be quadratic
        assert merged.tool_calls, "no tool call assembled"

    run(ours)
    run(anchor)
    repeats = SCALE.long_repeats
    return (
        best_of(repeats, lambda: run(ours)) / (n + fragments),
        best_of(repeats, lambda: run(anchor)) / (n + fragments),
    )


# -- 3. blocking overhead -----------------------------------------------------------------------


def blocking(url: str, assistant_id: str) -> dict[str, float]:
    from langchain_openai import ChatOpenAI

    from langchain_haufe import ChatHaufeCopilot

    http = httpx.Client(timeout=60)
    calls = SCALE.calls
    assistant_body = {"assistant_id": assistant_id, "messages": [{"role": "user", "content": QUESTION}]}
    completions_body = {"model": "haufe-copilot-default", "messages": [{"role": "user", "content": QUESTION}]}

    def per_call(run: Callable[[], Any]) -> float:
        run()
        return best_of(SCALE.repeats, lambda: [run() for _ in range(calls)]) / calls

    ours = ChatHaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id)
    anchor = ChatOpenAI(base_url=url + "/api/v1", api_key=KEY, model="haufe-copilot-default")
    figures = {
        "raw assistant": per_call(
            lambda: http.post(
                url + "/agents/v1/chat/completions", json=assistant_body, headers={"api-key": KEY}
            ).json()
        ),
        "raw completions": per_call(
            lambda: http.post(
                url + "/api/v1/chat/completions",
                json=completions_body,
                headers={"Authorization": f"Bearer {KEY}"},
            ).json()
        ),
        "ChatHaufeCopilot.invoke": per_call(lambda: ours.invoke(QUESTION)),
        "ChatOpenAI.invoke": per_call(lambda: anchor.invoke(QUESTION)),
    }
    try:
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.openai_like import OpenAILike

        from llama_index_haufe import HaufeCopilot

        llama = HaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id)
        like = OpenAILike(
            api_base=url + "/api/v1", api_key=KEY, model="haufe-copilot-default", is_chat_model=True
        )
        message = [ChatMessage(role="user", content=QUESTION)]
        figures["HaufeCopilot.chat"] = per_call(lambda: llama.chat(message))
        figures["OpenAILike.chat"] = per_call(lambda: like.chat(message))
    except ImportError:
        pass
    http.close()
    return figures


# -- 4. concurrency ---------------------------------------------------------------------------


def concurrency(url: str, assistant_id: str) -> dict[str, dict[str, float]]:
    from langchain_openai import ChatOpenAI

    from langchain_haufe import ChatHaufeCopilot

    def open_sockets() -> int:
        # The emulator runs in another process: every socket here is a client connection.
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with suppress(OSError):  # a descriptor closed while we looked
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        return count

    async def run(model: Any, streams: int) -> dict[str, float]:
        baseline = open_sockets()
        peak = 0
        done = threading.Event()

        def watch() -> None:  # a thread, so that sampling never blocks the loop under test
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, open_sockets() - baseline)

        async def one() -> int:
            return sum([1 async for _ in model.astream(QUESTION)])

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(streams)), return_exceptions=True)
        wall = time.perf_counter() - started
        done.set()
        watcher.join()
        errors = sum(1 for o in outcomes if isinstance(o, BaseException))
        return {"wall": wall, "errors": errors, "peak": peak}

    headers = bulk(SCALE.deltas_per_stream)
    ours = ChatHaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id, default_headers=headers)
    anchor = ChatOpenAI(
        base_url=url + "/api/v1",
        api_key=KEY,
        model="haufe-copilot-default",
        default_headers={"Accept": "text/event-stream", **headers},
    )
    return {"ours": asyncio.run(run(ours, SCALE.streams)), "anchor": asyncio.run(run(anchor, SCALE.streams))}


# -- 5. import time ---------------------------------------------------------------------------


def compile_our_packages() -> None:
    """Write our packages' bytecode, as installing a wheel does. Without it (an editable
    install under PYTHONDONTWRITEBYTECODE) every fresh interpreter would compile our sources
    while the anchors load theirs from bytecode."""
    for package in ("haufe_copilot", "langchain_haufe", "llama_index_haufe", "llama_index"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def import_time(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(SCALE.import_repeats):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(result.stdout.strip()))
    return min(times)


def loaded_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


# -- 6. memory --------------------------------------------------------------------------------


def memory(url: str, assistant_id: str) -> tuple[float, int]:
    from haufe_copilot import HaufeCopilotClient

    deltas, size = SCALE.memory_deltas, 1_000
    client = HaufeCopilotClient(api_key=KEY, base_url=url)
    headers = {**bulk(deltas), "x-emulator-bulk-delta-chars": str(size)}
    total = 0
    for chunk in client.assistant.stream(
        assistant_id=assistant_id,
        messages=[{"role": "user", "content": QUESTION}],
        extra_headers={**headers, "x-emulator-bulk": "10"},
    ):
        total += len(chunk.delta.content)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    total = 0
    for chunk in client.assistant.stream(
        assistant_id=assistant_id, messages=[{"role": "user", "content": QUESTION}], extra_headers=headers
    ):
        total += len(chunk.delta.content)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    client.close()
    return peak / 1e6, total


# -- the report -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global SCALE
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, one repetition: shows the harness works; the figures mean nothing",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="write the table here instead of benchmarks/RESULTS.md and the README",
    )
    args = parser.parse_args(argv)
    SCALE = QUICK if args.quick else FULL
    if args.quick and args.results is None:
        parser.error("--quick needs --results: quick figures must not replace the published table")
    from haufe_emulator.app import DEFAULT_ASSISTANT_ID as assistant_id

    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} cores\n")
    with emulator() as url:
        per_delta, profiles = streaming(url, assistant_id)
        for name, figures in per_delta.items():
            text = " / ".join(f"{figures[n] * 1e6:.1f}" for n in SCALE.sizes)
            record(f"stream: {name}", f"{text} us", f"per delta at {SCALE.size_label}")
        ours, anchor = per_delta["ChatHaufeCopilot.stream"], per_delta["ChatOpenAI.stream (anchor)"]
        ratio = max(ours[n] / anchor[n] for n in SCALE.sizes)
        record("ChatHaufeCopilot.stream / ChatOpenAI.stream", f"{ratio:.2f}x", "<= 0.20x", ratio <= 0.2)
        per_size = " / ".join(f"{ours[n] / anchor[n]:.2f}" for n in SCALE.sizes)
        record(f"  the same at {SCALE.size_label}", per_size + "x", "")
        for name, profile in profiles.items():
            record(
                f"  profile of one {_short(SCALE.largest)} stream: {name}",
                f"{profile.full_collections} full GCs, {profile.collector_seconds * 1e3:.0f} of "
                f"{profile.total_seconds * 1e3:.0f} ms",
                "time in the cyclic GC, of the whole stream",
            )
        ours_long, anchor_long = (profiles[name] for name in GC_PROFILED[:2])
        outside = (ours_long.total_seconds - ours_long.collector_seconds) / (
            anchor_long.total_seconds - anchor_long.collector_seconds
        )
        record(
            f"  the same at {_short(SCALE.largest)}, the collector's time left out",
            f"{outside:.2f}x",
            "(explains the miss)",
        )
        over_a = " / ".join(f"{ours[n] / per_delta[FLOOR_A][n]:.1f}" for n in SCALE.sizes)
        record(
            f"  ChatHaufeCopilot.stream / floor A at {SCALE.size_label}",
            over_a + "x",
            "(floor A builds nothing: any real model costs more)",
        )
        over_b = {n: ours[n] / per_delta[FLOOR_B][n] for n in SCALE.sizes}
        record(
            f"ChatHaufeCopilot.stream / floor B at {SCALE.size_label}",
            " / ".join(f"{over_b[n]:.2f}" for n in SCALE.sizes) + "x",
            "<= 1.5x",
            max(over_b.values()) <= 1.5,
        )
        if "llama_index_haufe HaufeCopilot.stream_chat" in per_delta:
            li, like = (
                per_delta["llama_index_haufe HaufeCopilot.stream_chat"],
                per_delta["OpenAILike.stream_chat (anchor)"],
            )
            ratio = max(li[n] / like[n] for n in SCALE.sizes)
            record(
                "LlamaIndex stream_chat / OpenAILike.stream_chat", f"{ratio:.2f}x", "<= 0.20x", ratio <= 0.2
            )
        for name in (
            "haufe_copilot core client",
            "ChatHaufeCopilot.stream",
            FLOOR_B,
            "ChatOpenAI.stream (anchor)",
            "llama_index_haufe HaufeCopilot.stream_chat",
        ):
            if name in per_delta:
                flat = per_delta[name][SCALE.largest] / min(per_delta[name].values())
                label = f"flat: {name} {_short(SCALE.largest)} vs best"
                if "anchor" in name:  # the same time in the collector, hidden in a cost 8x ours
                    record(label, f"{flat:.2f}x", "(no target: the shared cost, diluted)")
                else:
                    record(label, f"{flat:.2f}x", "<= 1.3x", flat <= 1.3)

        ours_tools, anchor_tools = tools_same_endpoint(url)
        record("tools bound, same SSE body: ChatHaufeCopilot", f"{ours_tools * 1e6:.1f} us", "per delta")
        record("tools bound, same SSE body: ChatOpenAI (anchor)", f"{anchor_tools * 1e6:.1f} us", "per delta")
        record(
            "tools bound: ChatHaufeCopilot / ChatOpenAI",
            f"{ours_tools / anchor_tools:.2f}x",
            "<= 0.20x",
            ours_tools / anchor_tools <= 0.2,
        )

        calls = blocking(url, assistant_id)
        ours_over = calls["ChatHaufeCopilot.invoke"] - calls["raw assistant"]
        anchor_over = calls["ChatOpenAI.invoke"] - calls["raw completions"]
        record("invoke overhead over raw httpx: ChatHaufeCopilot", f"{ours_over * 1e3:.3f} ms")
        record("invoke overhead over raw httpx: ChatOpenAI (anchor)", f"{anchor_over * 1e3:.3f} ms")
        record(
            "invoke overhead: ours / ChatOpenAI",
            f"{ours_over / anchor_over:.2f}x",
            "<= 0.35x",
            ours_over / anchor_over <= 0.35,
        )
        if "HaufeCopilot.chat" in calls:
            li_over = calls["HaufeCopilot.chat"] - calls["raw assistant"]
            like_over = calls["OpenAILike.chat"] - calls["raw completions"]
            record(
                "LlamaIndex chat overhead: ours / OpenAILike",
                f"{li_over / like_over:.2f}x",
                "<= 0.35x",
                li_over / like_over <= 0.35,
            )

        load = concurrency(url, assistant_id)
        for who in ("ours", "anchor"):
            outcome = load[who]
            record(
                f"{SCALE.streams:,} concurrent astream x {SCALE.deltas_per_stream} deltas: {who}",
                f"{outcome['wall']:.2f} s, {outcome['errors']:.0f} errors, {outcome['peak']:.0f} conns",
            )
        wall_ratio = load["ours"]["wall"] / load["anchor"]["wall"]
        record(
            "concurrent wall time: ours / ChatOpenAI", f"{wall_ratio:.2f}x", "<= 0.33x", wall_ratio <= 1 / 3
        )
        record(
            "concurrent: errors, peak connections (pool limit 100)",
            f"{load['ours']['errors']:.0f}, {load['ours']['peak']:.0f}",
            "0, <= 100",
            load["ours"]["errors"] == 0 and load["ours"]["peak"] <= 100,
        )

        peak_mb, streamed = memory(url, assistant_id)
        record(
            f"peak memory streaming {streamed / 1e6:.0f} MB through the core client",
            f"{peak_mb:.2f} MB",
            "< 5 MB",
            peak_mb < 5,
        )

    compile_our_packages()
    pairs = [
        ("from langchain_haufe import ChatHaufeCopilot", "from langchain_openai import ChatOpenAI", 0.3),
        ("from haufe_copilot import HaufeCopilotClient", "from openai import OpenAI", 0.4),
        (
            "from llama_index_haufe import HaufeCopilot",
            "from llama_index.llms.openai_like import OpenAILike",
            0.3,
        ),
    ]
    # What the framework's own base class costs to import: no subclass can import faster.
    floors = {
        "from langchain_haufe import ChatHaufeCopilot": (
            "from langchain_core.language_models import BaseChatModel"
        ),
        "from llama_index_haufe import HaufeCopilot": (
            "from llama_index.core.llms.function_calling import FunctionCallingLLM"
        ),
    }
    for ours_stmt, anchor_stmt, target in pairs:
        try:
            ours_t, anchor_t = import_time(ours_stmt), import_time(anchor_stmt)
        except subprocess.CalledProcessError:
            continue
        record(
            f"import: {ours_stmt.split(' import ')[1]} / {anchor_stmt.split(' import ')[1]}",
            f"{ours_t * 1e3:.0f} / {anchor_t * 1e3:.0f} ms = {ours_t / anchor_t:.2f}x",
            f"<= {target}x",
            ours_t / anchor_t <= target,
        )
        if ours_stmt in floors:
            base_t = import_time(floors[ours_stmt])
            record(
                f"  its floor: {floors[ours_stmt].split(' import ')[1]} alone / the anchor",
                f"{base_t * 1e3:.0f} ms = {base_t / anchor_t:.2f}x",
                "(the least any subclass can cost)",
            )
    leaks = {
        "import langchain_haufe": (
            {"llama_index", "fastapi", "uvicorn", "starlette"},
            "import langchain_haufe",
        ),
        "import llama_index_haufe": (
            {"langchain", "langchain_core", "fastapi", "uvicorn"},
            "import llama_index_haufe",
        ),
        "import haufe_copilot": (
            {"langchain_core", "llama_index", "fastapi", "uvicorn"},
            "import haufe_copilot",
        ),
    }
    for name, (forbidden, statement) in leaks.items():
        loaded = {m.split(".")[0] for m in loaded_modules(statement)}
        bad = sorted(loaded & forbidden)
        record(f"{name} loads none of {sorted(forbidden)}", ", ".join(bad) or "none", "none", not bad)
    from benchmarks import quota  # its own emulator (with the gateway quota), redis-server and fleet

    quota_rows = quota.measure(args.quick)
    write_results(args.results)
    quota.write_section(quota_rows, args.results, args.quick)
    return 0


NOTES = """## Reading the misses

- **Long streams through LangChain (20k deltas).** `BaseChatModel.stream` keeps every chunk
  until the stream ends (it merges them for `on_llm_end`). Once a stream has produced some
  100,000 container objects, Python's cyclic collector runs full collections, each of which walks
  every live object, including all the chunks kept so far; the "profile of one 20k stream" rows
  count them. Every LangChain model pays this: floor B, which does no I/O, grows as
  ChatHaufeCopilot does, and ChatOpenAI spends about as many milliseconds in the collector. The
  chunk we build is already as small as `AIMessageChunk` allows (a copy of a validated
  prototype), so our part of the cost is the framework's. With the collector's time left out,
  ChatHaufeCopilot costs the same fraction of ChatOpenAI at 20k as at 1k and 5k. The core
  client and the LlamaIndex adapter, which keep nothing per delta, stay flat.
- **Imports.** A `BaseChatModel` or `FunctionCallingLLM` subclass cannot import faster than its
  base class: the "its floor" rows show langchain-core (most of it langsmith, which
  `langchain_core.tracers` imports) and llama-index-core alone already cost more than the 0.3x
  targets. What the adapters add above their floors is the difference (httpx is most of it).
  Our packages' bytecode is written before the timing, as installing a wheel does.
- **Floor A** yields chunk objects built before the timing, so it measures LangChain's stream
  machinery without the chunk every real model must build; floor B builds one per delta.
"""


def write_results(path: Path | None) -> None:
    """The table (and the notes) to `path`; by default to benchmarks/RESULTS.md and the README."""
    lines = ["| measure | figure | target | |", "|---|---|---|---|"]
    for row in ROWS:
        status = "" if row.met is None else ("met" if row.met else "**missed**")
        lines.append(f"| {row.what} | {row.figure} | {row.target} | {status} |")
    table = "\n".join(lines)
    how = "`make bench`" if SCALE is FULL else "a quick run (too small for the figures to mean anything)"
    header = (
        f"Measured by {how} on {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, against the emulator in bulk mode on loopback.\n\n"
    )
    results = path or ROOT / "benchmarks" / "RESULTS.md"
    results.write_text("# Benchmark results\n\n" + header + table + "\n\n" + NOTES, encoding="utf-8")
    print(f"\nwrote {results}")
    if path is not None:
        return
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    pointer = "\n\nWhy the missed rows are missed, with their profiles: `benchmarks/RESULTS.md`."
    block = f"<!-- bench:start -->\n{header}{table}{pointer}\n<!-- bench:end -->"
    if "<!-- bench:start -->" in text:
        text = re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", lambda _: block, text, flags=re.DOTALL)
        readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
