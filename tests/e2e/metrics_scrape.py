"""End-to-end check of `secure_chat --metrics`: Prometheus' text scraped with plain HTTP
before and after a scripted session, as a new user would with curl.

Usage: python tests/e2e/metrics_scrape.py target/release/examples/secure_chat
(built with the feature `metrics`)

The session: 3 members connect; one handshake is refused for its password and one for its
Origin; one member sends 10 messages, which reach the 2 others; one member closes with 4000,
the others with 1000. Checks that every figure the session touched moved by exactly what it did
(connections, refusals by reason, closes by code, messages, bytes on the wire, fan-outs), that
the others did not move, that every sample of the exposition has the label `socket="Chat"`,
and that the chat's own port does not serve `/metrics`. (A slow consumer cut is counted in
tests/metrics.rs, where it can be made exact.)
"""

from __future__ import annotations

import asyncio
import re
import sys
import urllib.error
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from serverproc import Checks, ServerProcess

PASSWORD = "reallyverysecure"
check = Checks()
SAMPLE = re.compile(r'^(ws_[a-z_]+)\{([^}]*)\} (\S+)$')


def scrape(url: str) -> dict[str, float]:
    """Every sample of the exposition, keyed `name{labels}`."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a labelled ws_ sample: {line!r}"
        name, labels, value = m.groups()
        assert 'socket="Chat"' in labels, f"no socket label: {line!r}"
        samples[f"{name}{{{labels}}}"] = float(value)
    return samples


def get(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sample of `name` with these labels besides `socket` (0 when not exposed yet)."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for key, value in samples.items():
        if key.startswith(name + "{") and all(w in key for w in want) and key.count("=") == 1 + len(want):
            return value
    return 0.0


async def main(binary: str) -> None:
    server = await ServerProcess.start(binary, "--addr", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
    try:
        metrics_addr = (await server.wait_for(r"Metrics at http://([0-9.]+:[0-9]+)/metrics")).group(1)
        addr = (await server.wait_for(r"Chat at http://([0-9.]+:[0-9]+)/")).group(1)
        url = f"http://{metrics_addr}/metrics"
        before = await asyncio.to_thread(scrape, url)
        check(get(before, "ws_connections_opened_total") == 0 and get(before, "ws_connections") == 0,
              f"before the session: nothing opened ({len(before)} samples, each labelled socket=\"Chat\")")
        try:
            await asyncio.to_thread(urllib.request.urlopen, f"http://{addr}/metrics", timeout=10)
            check(False, "the chat's port serves /metrics")
        except urllib.error.HTTPError as err:
            check(err.code == 404, "the chat's own port does not serve /metrics (404)")

        ws_url = f"ws://{addr}/ws?password={PASSWORD}"
        # No compression: the bytes on the wire are then known exactly.
        a, b, c = [await connect(ws_url, compression=None) for _ in range(3)]
        during = await asyncio.to_thread(scrape, url)
        check(get(during, "ws_connections") == 3, "3 members connected: ws_connections is 3")
        for wrong, headers in [(f"ws://{addr}/ws?password=guess", None),
                               (ws_url, {"Origin": "https://elsewhere.example"})]:
            try:
                async with connect(wrong, additional_headers=headers, compression=None):
                    pass
                raise AssertionError(f"{wrong} accepted")
            except InvalidStatus as err:
                assert err.response.status_code == 403
        texts = [f"message {n}" for n in range(10)]
        for text in texts:
            await a.send(text)
        for member in (b, c):
            got = [await asyncio.wait_for(member.recv(), 10) for _ in texts]
            assert got == texts, got

        await b.close(code=4000, reason="done")
        await a.close()
        await c.close()
        await server.wait_for(r"closed connection with code 4000")
        while "\n".join(server.lines).count("closed connection with code 1000") < 2:
            await asyncio.sleep(0.05)  # the log is the only signal of the server's side here
        after = await asyncio.to_thread(scrape, url)

        def moved(name: str, **labels: str) -> float:
            return get(after, name, **labels) - get(before, name, **labels)

        check(moved("ws_connections_opened_total") == 3 and get(after, "ws_connections") == 0,
              "ws_connections_opened_total +3, ws_connections back to 0")
        check(moved("ws_handshakes_refused_total", reason="rejected") == 1,
              "ws_handshakes_refused_total{reason=\"rejected\"} +1 (the password)")
        check(moved("ws_handshakes_refused_total", reason="origin") == 1,
              "ws_handshakes_refused_total{reason=\"origin\"} +1")
        for reason in ("protocol", "limit", "shutdown", "error"):
            check(moved("ws_handshakes_refused_total", reason=reason) == 0, f"{reason} refusals: +0")
        check(moved("ws_connections_closed_total", code="1000") == 2, "closes with 1000: +2")
        check(moved("ws_connections_closed_total", code="application") == 1,
              "closes with 4000: +1, as code=\"application\"")
        check(moved("ws_messages_received_total") == 10, "ws_messages_received_total +10")
        check(moved("ws_messages_sent_total") == 20, "ws_messages_sent_total +20: each message to the 2 others")
        # Masked client frames: 2 + 4 bytes of header and 9 of text; three masked close frames
        # (2 + 4, then the code, and b's reason).
        wire_in = 10 * (2 + 4 + 9) + (2 + 4 + 2 + 4) + 2 * (2 + 4 + 2)
        check(moved("ws_received_bytes_total") == wire_in,
              f"ws_received_bytes_total +{wire_in}: every frame the members sent, headers included")
        # 20 frames of 2 + 9, and the close replies: the code and the reason echoed.
        wire_out = 20 * (2 + 9) + (2 + 2 + 4) + 2 * (2 + 2)
        check(moved("ws_sent_bytes_total") == wire_out, f"ws_sent_bytes_total +{wire_out}")
        check(moved("ws_fanout_seconds_count") == 10, "ws_fanout_seconds_count +10: one fan-out per message")
        for name in ("ws_slow_consumer_closes_total", "ws_slow_consumer_drops_total",
                     "ws_heartbeat_timeouts_total", "ws_rate_limit_pauses_total"):
            check(moved(name) == 0, f"{name} +0")
        check(not any(key.startswith("ws_backplane") for key in after),
              "no backplane series for a chat without --redis")
    finally:
        await server.kill()
    check.summary()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
