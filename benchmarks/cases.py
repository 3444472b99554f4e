"""What is measured: each case builds its candidates (a model, a client, its connection) before
the timing, so that only the calls themselves are timed, and returns the raw figures; the
targets they must meet are `benchmarks.targets`."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from benchmarks.harness import (
    FLOOR_B,
    INVOKE_FLOOR,
    KEY,
    QUESTION,
    Candidate,
    GcProfile,
    Run,
    Scale,
    assistant_body,
    best_of,
    bulk,
    compile_our_packages,
    consume,
    gc_profile,
    import_time,
    invoke_floor,
    langchain_floors,
    loaded_modules,
)
from haufe_copilot.protocol.assistant import ASSISTANT_CHAT_PATH, ASSISTANT_STREAM_PATH

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI
    from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

TOOL_QUESTION = "Wie ist das Wetter in Berlin? Nutze get_weather."
RAW = "raw httpx iter_lines + json.loads"
#: The prefix of the blocking figures measured on a mock transport.
NO_NETWORK = "no network: "
CORE = "haufe_copilot core client"
OURS = "ChatHaufeCopilot.stream"
ANCHOR = "ChatOpenAI.stream (anchor)"
OURS_LLAMA = "llama_index_haufe HaufeCopilot.stream_chat"
ANCHOR_LLAMA = "OpenAILike.stream_chat (anchor)"
#: The candidates whose longest run is also watched by the collector.
GC_PROFILED = (OURS, ANCHOR, FLOOR_B)

Model = TypeVar("Model")


def _anchor_headers(headers: Mapping[str, str] | None) -> dict[str, Any]:
    """An anchor's keywords for a stream's `headers`, asking for SSE (none for a blocking call)."""
    return {} if headers is None else {"default_headers": {"Accept": "text/event-stream", **headers}}


def chat_openai(url: str, headers: Mapping[str, str] | None = None) -> ChatOpenAI:
    """The anchor: LangChain's OpenAI model on the emulator's completions API."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=url + "/api/v1", api_key=KEY, model="haufe-copilot-default", **_anchor_headers(headers)
    )


def openai_like(url: str, headers: Mapping[str, str] | None = None) -> OpenAILike:
    """LlamaIndex's anchor, as `chat_openai`."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        api_base=url + "/api/v1",
        api_key=KEY,
        model="haufe-copilot-default",
        is_chat_model=True,
        **_anchor_headers(headers),
    )


def streamed(build: Callable[[dict[str, str]], Model], stream: Callable[[Model], Iterable[Any]]) -> Candidate:
    """A candidate whose model, built with the bulk headers for `n` deltas, streams one answer."""

    def make(n: int) -> Callable[[], None]:
        model = build(bulk(n))
        return consume(lambda: stream(model))

    return make


# -- 1. streaming cost per delta ----------------------------------------------------------------


def streaming(run: Run) -> tuple[dict[str, dict[int, float]], dict[str, GcProfile]]:
    """Seconds per delta, for each candidate and size, and the collector's share of the longest run
    for the LangChain candidates."""
    from haufe_copilot import HaufeCopilotClient
    from langchain_haufe import ChatHaufeCopilot

    url, assistant_id, scale = run.url, run.assistant_id, run.scale
    messages = [{"role": "user", "content": QUESTION}]
    body = assistant_body(run)
    http = httpx.Client(timeout=60)
    core = HaufeCopilotClient(api_key=KEY, base_url=url)

    def raw(n: int) -> Callable[[], None]:
        def run() -> None:
            with http.stream(
                "POST",
                url + ASSISTANT_STREAM_PATH,
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

    candidates: dict[str, Candidate] = {
        RAW: raw,
        CORE: ours_core,
        OURS: streamed(
            lambda headers: ChatHaufeCopilot(
                api_key=KEY, base_url=url, assistant_id=assistant_id, default_headers=headers
            ),
            lambda model: model.stream(QUESTION),
        ),
        ANCHOR: streamed(lambda headers: chat_openai(url, headers), lambda model: model.stream(QUESTION)),
        **langchain_floors(run),
    }
    try:
        from llama_index.core.llms import ChatMessage

        from llama_index_haufe import HaufeCopilot

        chat = [ChatMessage(role="user", content=QUESTION)]
        candidates[OURS_LLAMA] = streamed(
            lambda headers: HaufeCopilot(
                api_key=KEY, base_url=url, assistant_id=assistant_id, default_headers=headers
            ),
            lambda llm: llm.stream_chat(chat),
        )
        candidates[ANCHOR_LLAMA] = streamed(
            lambda headers: openai_like(url, headers), lambda llm: llm.stream_chat(chat)
        )
    except ImportError as exc:
        print(f"(LlamaIndex rows left out: {exc})")
    results: dict[str, dict[int, float]] = {}
    profiles: dict[str, GcProfile] = {}
    for name, make in candidates.items():
        results[name] = {}
        for n in scale.sizes:
            timed = make(n)
            timed()  # warm: imports, the connection
            results[name][n] = best_of(scale.repeats_at(n), timed) / n
            if n == scale.largest and name in GC_PROFILED:
                profiles[name] = gc_profile(timed)
    http.close()
    core.close()
    return results, profiles


# -- 2. tools bound, the same SSE body ---------------------------------------------------------


def tools_same_endpoint(run: Run) -> tuple[float, float]:
    """Seconds per delta (text and argument fragments): ChatHaufeCopilot, ChatOpenAI."""
    from langchain_core.tools import tool

    from langchain_haufe import ChatHaufeCopilot

    @tool
    def get_weather(city: str) -> str:
        """Das Wetter einer Stadt."""
        return "sonnig"

    n, fragments = run.scale.tool_deltas, 200
    headers = {"Accept": "text/event-stream", **bulk(n, fragments)}
    ours = ChatHaufeCopilot(api_key=KEY, base_url=run.url, default_headers=headers).bind_tools([get_weather])
    anchor = chat_openai(run.url, bulk(n, fragments)).bind_tools([get_weather])

    def call(model: Any) -> None:
        chunks = list(model.stream(TOOL_QUESTION))
        merged = chunks[0] + chunks[1:]  # merged once: adding chunk by chunk would be quadratic
        assert merged.tool_calls, "no tool call assembled"

    call(ours)
    call(anchor)
    repeats = run.scale.long_repeats
    return (
        best_of(repeats, lambda: call(ours)) / (n + fragments),
        best_of(repeats, lambda: call(anchor)) / (n + fragments),
    )


# -- 3. blocking overhead ----------------------------------------------------------------------


def blocking(run: Run) -> dict[str, float]:
    """Seconds per call: raw httpx on each API, and the models that call them."""
    from langchain_haufe import ChatHaufeCopilot

    url, assistant_id = run.url, run.assistant_id
    http = httpx.Client(timeout=60)
    calls = run.scale.calls
    body = assistant_body(run)
    completions_body = {"model": "haufe-copilot-default", "messages": [{"role": "user", "content": QUESTION}]}

    def per_call(call: Callable[[], Any]) -> float:
        call()
        return best_of(run.scale.repeats, lambda: [call() for _ in range(calls)]) / calls

    ours = ChatHaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id)
    anchor = chat_openai(url)
    figures = {
        "raw assistant": per_call(
            lambda: http.post(url + ASSISTANT_CHAT_PATH, json=body, headers={"api-key": KEY}).json()
        ),
        "raw completions": per_call(
            lambda: http.post(
                url + "/api/v1/chat/completions",
                json=completions_body,
                headers={"Authorization": f"Bearer {KEY}"},
            ).json()
        ),
        "ChatHaufeCopilot.invoke": per_call(lambda: ours.invoke(QUESTION)),
        INVOKE_FLOOR: per_call(invoke_floor(run, http)),
        "ChatOpenAI.invoke": per_call(lambda: anchor.invoke(QUESTION)),
    }
    figures.update(_blocking_without_the_network(run, per_call))
    try:
        from llama_index.core.llms import ChatMessage

        from llama_index_haufe import HaufeCopilot

        llama = HaufeCopilot(api_key=KEY, base_url=url, assistant_id=assistant_id)
        like = openai_like(url)
        message = [ChatMessage(role="user", content=QUESTION)]
        figures["HaufeCopilot.chat"] = per_call(lambda: llama.chat(message))
        figures["OpenAILike.chat"] = per_call(lambda: like.chat(message))
    except ImportError:
        pass
    http.close()
    return figures


def _blocking_without_the_network(
    run: Run, per_call: Callable[[Callable[[], Any]], float]
) -> dict[str, float]:
    """The same three calls on an `httpx.MockTransport` that answers with one answer the emulator
    gave: the CPU each costs, with no network wait in between (ours through an `http_client`
    passed in, as a test would give it)."""
    from langchain_haufe import ChatHaufeCopilot

    body = assistant_body(run)
    answer = httpx.post(run.url + ASSISTANT_CHAT_PATH, json=body, headers={"api-key": KEY}).content

    def reply(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(200, content=answer, headers={"content-type": "application/json"})

    def http() -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(reply))

    raw_http = http()
    ours = ChatHaufeCopilot(api_key=KEY, base_url=run.url, assistant_id=run.assistant_id, http_client=http())
    return {
        NO_NETWORK + "raw": per_call(
            lambda: raw_http.post(run.url + ASSISTANT_CHAT_PATH, json=body, headers={"api-key": KEY}).json()
        ),
        NO_NETWORK + INVOKE_FLOOR: per_call(invoke_floor(run, http())),
        NO_NETWORK + "ChatHaufeCopilot.invoke": per_call(lambda: ours.invoke(QUESTION)),
    }


# -- 4. concurrency ----------------------------------------------------------------------------


def concurrency(run: Run) -> dict[str, dict[str, float]]:
    """Many `astream` calls on one event loop, ours and the anchor's: wall time, errors, and the
    most client connections open at once."""
    from langchain_haufe import ChatHaufeCopilot

    def open_sockets() -> int:
        # The emulator runs in another process: every socket here is a client connection.
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with suppress(OSError):  # a descriptor closed while we looked
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        return count

    async def load(model: Any, streams: int) -> dict[str, float]:
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

    headers = bulk(run.scale.deltas_per_stream)
    ours = ChatHaufeCopilot(
        api_key=KEY, base_url=run.url, assistant_id=run.assistant_id, default_headers=headers
    )
    anchor = chat_openai(run.url, headers)
    streams = run.scale.streams
    return {"ours": asyncio.run(load(ours, streams)), "anchor": asyncio.run(load(anchor, streams))}


# -- 5. imports --------------------------------------------------------------------------------

#: What a user writes, against what they would write for the anchor.
IMPORT_PAIRS = (
    ("from langchain_haufe import ChatHaufeCopilot", "from langchain_openai import ChatOpenAI"),
    ("from haufe_copilot import HaufeCopilotClient", "from openai import OpenAI"),
    ("from llama_index_haufe import HaufeCopilot", "from llama_index.llms.openai_like import OpenAILike"),
)
#: What the framework's own base class costs to import: no subclass can import faster.
IMPORT_FLOORS = {
    "from langchain_haufe import ChatHaufeCopilot": (
        "from langchain_core.language_models import BaseChatModel"
    ),
    "from llama_index_haufe import HaufeCopilot": (
        "from llama_index.core.llms.function_calling import FunctionCallingLLM"
    ),
}
#: Each package alone, for what it loads.
IMPORTED = ("import langchain_haufe", "import llama_index_haufe", "import haufe_copilot")


@dataclass(frozen=True)
class ImportTimes:
    ours: str
    anchor: str
    ours_seconds: float
    anchor_seconds: float
    floor: str | None = None
    floor_seconds: float = 0.0


def import_times(scale: Scale) -> list[ImportTimes]:
    """Each pair that imports at all, in fresh interpreters, with its framework's floor."""
    compile_our_packages()
    times = []
    for ours, anchor in IMPORT_PAIRS:
        try:
            ours_seconds = import_time(ours, scale.import_repeats)
            anchor_seconds = import_time(anchor, scale.import_repeats)
        except subprocess.CalledProcessError:
            continue
        floor = IMPORT_FLOORS.get(ours)
        floor_seconds = import_time(floor, scale.import_repeats) if floor else 0.0
        times.append(ImportTimes(ours, anchor, ours_seconds, anchor_seconds, floor, floor_seconds))
    return times


def loaded_packages() -> dict[str, set[str]]:
    """The top-level packages a fresh interpreter holds after each of `IMPORTED`."""
    return {statement: {m.split(".")[0] for m in loaded_modules(statement)} for statement in IMPORTED}


# -- 6. memory ---------------------------------------------------------------------------------


def memory(run: Run) -> tuple[float, int]:
    """The peak MB traced while the core client streams a long answer without keeping it, and the
    characters streamed."""
    from haufe_copilot import HaufeCopilotClient

    deltas, size = run.scale.memory_deltas, 1_000
    client = HaufeCopilotClient(api_key=KEY, base_url=run.url)
    headers = {**bulk(deltas), "x-emulator-bulk-delta-chars": str(size)}
    messages = [{"role": "user", "content": QUESTION}]

    def stream(extra_headers: dict[str, str]) -> int:
        total = 0
        for chunk in client.assistant.stream(
            assistant_id=run.assistant_id, messages=messages, extra_headers=extra_headers
        ):
            total += len(chunk.delta.content)
        return total

    stream({**headers, "x-emulator-bulk": "10"})  # warm
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    total = stream(headers)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    client.close()
    return peak / 1e6, total
