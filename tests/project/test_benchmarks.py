"""`make bench` itself: the harness runs end to end at tiny sizes (`--quick`), so it cannot rot
between the runs that publish figures. Speed is not asserted here (the figures at these sizes
mean nothing); what is a matter of correctness is: every measure reports, the concurrent
streams end without errors inside the pool limit, the imports load nothing they must not, and
a quick run never replaces the published table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory: pytest.TempPathFactory) -> str:
    published = {name: (ROOT / name).read_bytes() for name in ("README.md", "benchmarks/RESULTS.md")}
    results = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {name: (ROOT / name).read_bytes() for name in published} == published
    return results.read_text(encoding="utf-8")


def _row(table: str, starts: str) -> list[str]:
    rows = [line for line in table.splitlines() if line.startswith(f"| {starts}")]
    assert rows, f"no row starting {starts!r} in:\n{table}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.mark.timeout(360)
def test_every_measure_reports(quick_table: str) -> None:
    for starts in (
        "stream: raw httpx",
        "stream: haufe_copilot core client",
        "stream: ChatHaufeCopilot.stream",
        "stream: ChatOpenAI.stream (anchor)",
        "stream: LangChain floor B",
        "stream: llama_index_haufe HaufeCopilot.stream_chat",
        "stream: OpenAILike.stream_chat (anchor)",
        "  profile of one 400 stream: ChatHaufeCopilot.stream",
        "tools bound: ChatHaufeCopilot / ChatOpenAI",
        "invoke overhead: ours / ChatOpenAI",
        "LlamaIndex chat overhead: ours / OpenAILike",
        "concurrent wall time: ours / ChatOpenAI",
        "peak memory streaming",
        "import: ChatHaufeCopilot / ChatOpenAI",
        "import: HaufeCopilotClient / OpenAI",
        "import: HaufeCopilot / OpenAILike",
    ):
        what, figure, *_ = _row(quick_table, starts)
        assert figure and "nan" not in figure, what
    assert "## Reading the misses" in quick_table and "a quick run" in quick_table


@pytest.mark.timeout(360)
def test_the_concurrent_streams_end_cleanly_inside_the_pool(quick_table: str) -> None:
    *_, status = _row(quick_table, "concurrent: errors, peak connections")
    assert status == "met"
    assert "0 errors" in _row(quick_table, "20 concurrent astream x 10 deltas: ours")[1]


@pytest.mark.timeout(360)
def test_the_imports_load_nothing_they_must_not(quick_table: str) -> None:
    for package in ("langchain_haufe", "llama_index_haufe", "haufe_copilot"):
        _, loaded, _, status = _row(quick_table, f"import {package} loads none of")
        assert (loaded, status) == ("none", "met")


@pytest.mark.timeout(360)
def test_the_shared_quota_holds_for_a_fleet(quick_table: str) -> None:
    """A tiny fleet through Redis: no 429 reaches a caller; the anchor's rows and the limiter's
    cost per acquire report."""
    assert "### The shared quota" in quick_table
    _, figure, _, status = _row(quick_table, "quota: HaufeRateLimiter.redis: 429s reaching the callers")
    assert (figure, status) == ("0", "met")
    for starts in (
        "quota: HaufeRateLimiter.redis, 2 x 5 callers",
        "quota: InMemoryRateLimiter per process (anchor): 429s reaching the callers",
        "quota: InMemoryRateLimiter per process (anchor): 429s at the gateway, retries",
        "limiter cost per acquire: Redis, 1 process(es) at once",
        "limiter cost per acquire: Redis, 2 process(es) at once",
        "limiter cost per acquire: in-process",
    ):
        assert _row(quick_table, starts)[1]
