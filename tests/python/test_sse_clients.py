"""Popular Python SSE clients receive every event promptly from a cleartext HTTP/1.1 stream.

``sseclient-py`` reads the response body as it arrives, over ``requests`` or ``urllib3``. Both
buffer a body delimited by closing the connection, so events used to arrive late and in
bunches; the hub frames streams with chunked transfer coding, which they hand over per chunk.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import requests
import sseclient
import urllib3

REPO = Path(__file__).resolve().parents[2]
HERALD = os.environ.get("HERALD_BIN", str(REPO / "target" / "release" / "herald"))
KEY = "sse-clients-publish-key"
EVENTS = 20
#: The longest an event may take from publish to the client's callback.
PROMPT = 0.1


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    """``herald serve --allow-anonymous`` on a free port; its base URL."""
    process = subprocess.Popen(
        [HERALD, "serve", "--listen", "127.0.0.1:0", "--jwt-secret", "s" * 32,
         "--publish-key", KEY, "--allow-anonymous"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert line.startswith("herald listening on "), line
    try:
        yield line.split()[-1]
    finally:
        process.kill()
        process.wait()


def publish(hub: str, data: str) -> None:
    request = urllib.request.Request(
        f"{hub}/publish",
        data=json.dumps({"event": "tick", "data": data}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def over_requests(url: str) -> Iterable[bytes]:
    response = requests.get(url, stream=True, timeout=10, headers={"Accept": "text/event-stream"})
    response.raise_for_status()
    return response  # type: ignore[return-value]


def over_urllib3(url: str) -> Iterable[bytes]:
    response = urllib3.PoolManager().request(
        "GET", url, preload_content=False, headers={"Accept": "text/event-stream"}, timeout=10
    )
    assert response.status == 200
    return response  # type: ignore[return-value]


@pytest.mark.parametrize("transport", [over_requests, over_urllib3], ids=["requests", "urllib3"])
def test_every_event_arrives_within_100_ms(
    hub: str, transport: Callable[[str], Iterable[bytes]]
) -> None:
    received: dict[str, float] = {}
    listening = threading.Event()
    done = threading.Event()

    def listen() -> None:
        client = sseclient.SSEClient(transport(f"{hub}/events"))
        for event in client.events():
            if event.data == "probe":
                listening.set()
            elif event.event == "tick":
                received[event.data] = time.monotonic()
                if len(received) == EVENTS:
                    done.set()
                    return

    threading.Thread(target=listen, daemon=True).start()
    # The stream is open once an event reaches it: probe until one does.
    deadline = time.monotonic() + 10
    while not listening.is_set():
        assert time.monotonic() < deadline, "the stream never received anything"
        publish(hub, "probe")
        listening.wait(0.2)
    sent: dict[str, float] = {}
    for n in range(EVENTS):
        data = f"event-{n}"
        sent[data] = time.monotonic()
        publish(hub, data)
        time.sleep(0.15)
    assert done.wait(5), f"received {len(received)} of {EVENTS}"
    late = {d: received[d] - sent[d] for d in sent if received[d] - sent[d] > PROMPT}
    assert not late, f"events later than {PROMPT * 1000:.0f} ms: {late}"
