"""Async streams: start an answer in the background, read part of it, drop the connection, and
resume where you left off, with no event lost or repeated.

`client.streams.start(...)` asks the platform API to generate in the background and returns at
once with a `stream_id`. `client.streams.events(stream_id)` observes the answer as typed events
numbered 1, 2, 3, ...; leaving the loop closes the connection, but the answer goes on on the
server. `events(stream_id, last_event_id=n)` later gives exactly the events after n (the client
sends `Last-Event-ID`), and the client does the same by itself when a connection breaks.

    python examples/async_streams_resume.py

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY when the key is set; otherwise it
starts the local emulator in-process (EmulatorServer). The second part cuts connections with the
emulator's `x-emulator-cut-after` header, which only the emulator understands.
"""

from __future__ import annotations

import asyncio

from _haufe import haufe_copilot

from haufe_copilot import AsyncHaufeCopilotClient
from haufe_copilot.types import DeltaEvent, DoneEvent, StreamEvent

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"
#: The emulator paces its answer (a pause before each event), so it is still running when we resume.
SLOW = {"x-emulator-delta-delay": "0.01"}


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.content for e in events if isinstance(e, DeltaEvent))


async def main() -> None:
    with haufe_copilot() as conn:
        async with AsyncHaufeCopilotClient(api_key=conn.api_key, base_url=conn.base_url) as client:
            messages = [{"role": "user", "content": QUESTION}]
            handle = await client.streams.start(messages=messages, extra_headers=SLOW)
            print(f"started stream {handle.stream_id} ({handle.status})")

            # 1. Read the first ten deltas, then leave: the connection closes at once.
            first: list[StreamEvent] = []
            async with client.streams.events(handle.stream_id) as events:
                async for event in events:
                    first.append(event)
                    if sum(isinstance(e, DeltaEvent) for e in first) == 10:
                        break
            last_seen = first[-1].id
            print(f"read events 1-{last_seen}: {text_of(first)!r}")
            status = await client.streams.status(handle.stream_id)
            print(f"dropped the connection; on the server the stream is {status.status}")

            # 2. Come back later: exactly the events after the last one seen, live ones included.
            rest = [e async for e in client.streams.events(handle.stream_id, last_event_id=last_seen)]
            print(f"resumed from Last-Event-ID {last_seen}: events {rest[0].id}-{rest[-1].id}")
            ids = [e.id for e in first + rest]
            assert ids == list(range(1, len(ids) + 1)), ids
            done = rest[-1]
            assert isinstance(done, DoneEvent)
            print(f"no event lost or repeated: ids 1-{ids[-1]}, each once; done: {done.status}")
            print(f"Antwort: {text_of(first + rest)}")

            # 3. The whole stream again, observed through connections that break every 5 events:
            #    the client re-attaches by itself with the last id it delivered.
            cut = {"x-emulator-cut-after": "5"}
            again = [e async for e in client.streams.events(handle.stream_id, extra_headers=cut)]
            same = [e.model_dump() for e in again] == [e.model_dump() for e in first + rest]
            print(f"read again through cut connections: {len(again)} events, identical: {same}")


if __name__ == "__main__":
    asyncio.run(main())
