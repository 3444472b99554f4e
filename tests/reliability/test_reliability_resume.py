"""1,000 async streams cut at random points resume with zero lost and zero duplicated events."""

from __future__ import annotations

from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient
from haufe_emulator import EmulatorServer
from tests.conftest import SESSION_API_KEY
from tests.reliability.resume import resume_streams


@pytest.mark.timeout(300)
async def test_a_thousand_streams_cut_at_random_points_resume_exactly(emulator: EmulatorServer) -> None:
    registry = emulator.app.state.async_streams
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        report = await resume_streams(client, registry, count=1000, concurrency=100, seed=20251122)
    print(report.summary())
    assert report.ok, report.summary() + "\n" + "\n".join(report.problems[:20])
    assert report.streams == 1000 and report.uncut == 0  # every stream was cut at least once
    assert report.lost == 0 and report.duplicated == 0 and report.resent == 0


async def test_the_check_would_see_a_lost_and_a_duplicated_event(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check, on a client whose re-attachment is off by one either way."""
    import haufe_copilot.resources.streams as streams

    registry = emulator.app.state.async_streams
    original = streams.build_stream_events
    for shift, what in ((1, "lost"), (-1, "resent")):

        def shifted(
            stream_id: str, last_event_id: int, extra_headers: Any = None, _shift: int = shift
        ) -> Any:
            resume_at = max(last_event_id + _shift, 0) if last_event_id else 0
            return original(stream_id, resume_at, extra_headers)

        monkeypatch.setattr(streams, "build_stream_events", shifted)
        async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
            report = await resume_streams(
                client, registry, count=20, concurrency=10, seed=shift + 10, max_reattach=1
            )
        assert not report.ok
        assert getattr(report, what) > 0 and report.wrong_resume_point > 0, report.summary()
