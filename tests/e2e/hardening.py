"""Bad input against examples/secure_chat with its default config, as a new user would try it.

Usage: python tests/e2e/hardening.py target/release/examples/secure_chat [--markdown FILE]

Each check sends the bad input over a real socket and checks the exact answer; the figures
(memory growth, ping latency under load, time to close a slow consumer) go to RELIABILITY.md.
secure_chat turns permessage-deflate on, and the `websockets` members offer it (its default),
so their messages go through inflate and the broadcasts to them through deflate.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import sys
import threading
import time
import faulthandler
import zlib

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from serverproc import Checks, ServerProcess

PASSWORD = "reallyverysecure"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
check = Checks()
figures: list[tuple[str, str, str]] = []


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def raw(addr: str, request: str) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = addr.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if l)}
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return status, headers, body, reader, writer


def handshake(addr: str, method: str = "GET", extra: str = "", key: bool = True, version: str = "13") -> str:
    lines = [f"{method} /ws?password={PASSWORD} HTTP/1.1", f"Host: {addr}", "Upgrade: websocket", "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {KEY}")
    lines.append(f"Sec-WebSocket-Version: {version}")
    if method != "GET":
        lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n" + extra + "\r\n"


def frame(opcode: int, payload: bytes, masked: bool = True) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def close_code_after(addr: str, data: bytes) -> int:
    status, _, _, reader, writer = await raw(addr, handshake(addr))
    assert status == 101
    writer.write(data)
    await writer.drain()
    while True:
        b0, b1 = await asyncio.wait_for(reader.readexactly(2), 10)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await reader.readexactly(8))[0]
        payload = await reader.readexactly(n)
        if b0 & 0x0F == 0x8:
            writer.close()
            return struct.unpack(">H", payload[:2])[0]


async def member(addr: str, **kwargs):
    return await connect(f"ws://{addr}/ws?password={PASSWORD}", open_timeout=10, max_size=None, **kwargs)


class Flood:
    """What one broadcast flood measured."""

    def __init__(self, secs: float, latencies: list[float], growth: int, slow_closed_after: float, wire_ratio: float) -> None:
        self.secs = secs
        self.latencies = latencies
        self.max_ping = max(latencies)
        self.growth = growth
        self.slow_closed_after = slow_closed_after
        self.wire_ratio = wire_ratio

    def summary(self) -> str:
        p99 = sorted(self.latencies)[int(len(self.latencies) * 0.99)] * 1000
        return (f"RSS +{self.growth / 1024:.1f} MiB; ping p99 {p99:.1f} ms, max {self.max_ping * 1000:.1f} ms over "
                f"{len(self.latencies)} pings; closed {self.slow_closed_after:.1f} s into a {self.secs:.1f} s flood")


async def flood(server: ServerProcess, addr: str, *, senders: int, per_sender: int, chunk: bytes) -> Flood:
    """A never-reading member, a watcher that pings every 50 ms, and `senders` members that
    each send `per_sender` copies of `chunk` through the broadcast (all offering
    permessage-deflate), until the watcher has every byte; the never-reading member must be
    closed with 1008."""
    pid = server.proc.pid
    cut_before = sum("closed connection with code 1008" in l for l in server.lines)
    before = rss_kib(pid)
    status, _, _, _, sloth = await raw(addr, handshake(addr))
    assert status == 101
    sloth.transport.pause_reading()
    watcher = await member(addr)
    total = senders * per_sender * len(chunk)
    watched = 0
    all_seen = asyncio.Event()

    async def watch() -> None:
        nonlocal watched
        async for message in watcher:
            watched += len(message)
            if watched >= total:
                all_seen.set()
                return

    # The senders run on their own event loop in another thread: compressing 64 KiB of random
    # bytes costs the client milliseconds a message, and on this loop their first burst would
    # hold up the pings for about a second (client time, not server time).
    flood_over = threading.Event()

    async def send_all() -> None:
        async def drain(ws) -> None:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass

        async def send(ws) -> None:
            for _ in range(per_sender):
                await ws.send(chunk)

        members = [await member(addr) for _ in range(senders)]
        drains = [asyncio.create_task(drain(ws)) for ws in members]
        await asyncio.gather(*(send(ws) for ws in members))
        await asyncio.to_thread(flood_over.wait, 300)
        for ws in members:
            await ws.close()
        for task in drains:
            task.cancel()

    started = time.monotonic()
    watching = asyncio.create_task(watch())
    sending = asyncio.ensure_future(asyncio.to_thread(asyncio.run, send_all()))
    latencies = []
    peak = before
    slow_closed_after = None

    def cut() -> bool:
        return sum("closed connection with code 1008" in l for l in server.lines) > cut_before

    deadline = started + 120
    while not all_seen.is_set():
        if sending.done() and sending.exception():
            raise AssertionError("a sender failed during the flood") from sending.exception()
        if time.monotonic() > deadline:
            flood_over.set()
            print("\n".join(server.lines[-30:]))
            raise AssertionError(f"the watcher saw {watched} of {total} bytes")
        t0 = time.monotonic()
        await asyncio.wait_for(await watcher.ping(), 10)
        latencies.append(time.monotonic() - t0)
        peak = max(peak, rss_kib(pid))
        if slow_closed_after is None and cut():
            slow_closed_after = time.monotonic() - started
        await asyncio.sleep(0.05)  # pacing of the latency probe
    secs = time.monotonic() - started
    flood_over.set()
    await sending
    await watching
    deadline = time.monotonic() + 30
    while not cut():
        assert time.monotonic() < deadline, "the never-reading member was not closed with 1008"
        await asyncio.sleep(0.05)
    if slow_closed_after is None:
        slow_closed_after = time.monotonic() - started
    await watcher.close()
    sloth.close()
    # What one message is on the wire, compressed alone as permessage-deflate sends it (the
    # members keep their context, so later copies are smaller still).
    deflate = zlib.compressobj(wbits=-15)
    on_wire = len(deflate.compress(chunk) + deflate.flush(zlib.Z_SYNC_FLUSH)) - 4
    return Flood(secs, latencies, peak - before, slow_closed_after, len(chunk) / on_wire)


async def main(binary: str, markdown: str | None) -> None:
    server = await ServerProcess.start(binary, "--addr", "127.0.0.1:0")
    pid = server.proc.pid
    try:
        addr = (await server.wait_for(r"Chat at http://([0-9.]+:[0-9]+)/")).group(1)

        status, headers, _, _, w = await raw(addr, handshake(addr, method="POST"))
        w.close()
        check(status == 405 and headers.get("allow") == "GET", "POST upgrade: 405 with Allow: GET")
        status, _, _, _, w = await raw(addr, handshake(addr, key=False))
        w.close()
        check(status == 400, "missing Sec-WebSocket-Key: 400")
        status, headers, _, _, w = await raw(addr, handshake(addr, version="12"))
        w.close()
        check(status == 426 and headers.get("sec-websocket-version") == "13", "version 12: 426 with Sec-WebSocket-Version: 13")
        status, _, _, _, w = await raw(addr, handshake(addr, extra="Origin: https://evil.example\r\n"))
        w.close()
        check(status == 403, "cross-origin browser request: 403")
        status, _, _, _, w = await raw(addr, handshake(addr, extra=f"Origin: http://{addr}\r\n"))
        w.close()
        check(status == 101, "same-origin browser request: 101")

        check(await close_code_after(addr, frame(0x1, b"\xff\xfe")) == 1007, "invalid UTF-8: 1007")
        check(await close_code_after(addr, frame(0x1, b"hi", masked=False)) == 1002, "unmasked frame: 1002")
        # Sent plain, an 11 MiB message is an 11 MiB frame (over the 1 MiB frame limit); sent
        # compressed it is one frame of about 11 KiB whose inflated size is over the 10 MiB
        # message limit.
        for compression, how in ((None, "uncompressed"), ("deflate", "compressed to a small frame")):
            big = await member(addr, compression=compression)
            negotiated = "permessage-deflate" in big.response.headers.get("Sec-WebSocket-Extensions", "")
            check(negotiated == (compression is not None),
                  f"a member {'offering' if compression else 'not offering'} permessage-deflate "
                  f"{'gets' if compression else 'does not get'} it")
            try:
                await big.send(b"x" * (11 << 20))
                await asyncio.wait_for(big.recv(), 20)
                check(False, f"an 11 MiB message ({how}) is refused")
            except ConnectionClosed as closed:
                check(closed.rcvd is not None and closed.rcvd.code == 1009, f"an 11 MiB message ({how}): 1009")

        # A never-reading member while others send 20 MB through the broadcast.
        await server.wait_for(r"closed connection with code 1009")
        # Random bytes do not compress: on the wire as large as inflated.
        result = await flood(server, addr, senders=4, per_sender=80, chunk=os.urandom(64 << 10))
        check(result.max_ping < 1.0, f"pings answered promptly during the flood (max {result.max_ping * 1000:.1f} ms)")
        check(result.growth < 64 << 10, f"server grew {result.growth / 1024:.1f} MiB (< 64 MiB) with a never-reading member")
        check(True, "the never-reading member was closed with 1008")
        figures.append(("never-reading member while 4 members send 20 MiB through the broadcast",
                        "closed with 1008 (send queue full); others served", result.summary()))

        # The same with messages that compress a thousandfold: 64 KiB of one character is
        # about 100 bytes on the wire. The rate limit counts inflated bytes too, so each of
        # the five senders' 20 MiB takes about as long as it would uncompressed (1 MiB/s with
        # a one-second burst: 19 s), and the work of inflating and compressing it for every
        # member does not hold up another member's pings.
        result = await flood(server, addr, senders=5, per_sender=320, chunk=b"x" * (64 << 10))
        check(result.wire_ratio > 100, f"the messages compress {result.wire_ratio:.0f}:1 or more on the wire")
        check(result.max_ping < 1.0, f"pings answered promptly during the compressed flood (max {result.max_ping * 1000:.1f} ms)")
        check(result.secs >= 17.0, f"each sender's 20 MiB, compressed, is paced by the 1 MiB/s limit ({result.secs:.1f} s, ≥ 17 s)")
        check(result.growth < 64 << 10, f"server grew {result.growth / 1024:.1f} MiB (< 64 MiB) during the compressed flood")
        figures.append((f"5 members each send 320 × 64 KiB of one character (20 MiB each; {result.wire_ratio:.0f}:1 compressed, about 80 bytes a message on the wire) through the broadcast, one member never reading",
                        "read at the rate limit counted on inflated bytes (1 MiB/s each): as long as uncompressed; the never-reading member closed with 1008",
                        result.summary()))

        # 500 abrupt disconnects (RST), in batches under the per-IP limit.
        before = rss_kib(pid)
        started = time.monotonic()
        for _ in range(5):
            batch = [await raw(addr, handshake(addr)) for _ in range(100)]
            for status, _, _, _, writer in batch:
                assert status == 101, status
                sock = writer.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
        reset_secs = time.monotonic() - started
        after = await member(addr)
        await after.send("still here")
        check(True, "after 500 abrupt disconnects a member is still accepted")
        await after.close()
        growth = rss_kib(pid) - before
        figures.append(("500 connections reset abruptly (RST, no close frame)",
                        "each reported to on_close with 1006; nothing leaks",
                        f"{reset_secs:.1f} s for 500; RSS {growth:+d} KiB afterwards; next member accepted"))

        server.terminate()
        check(await server.wait_exit() == 0, "SIGTERM: clean exit")
    finally:
        await server.kill()
    if markdown:
        with open(markdown, "w") as f:
            f.write("| scenario | what the server does | measured |\n| --- | --- | --- |\n")
            for row in figures:
                f.write("| " + " | ".join(row) + " |\n")
    check.summary()


def tuple_addr(addr: str) -> tuple[str, int]:
    host, port = addr.split(":")
    return host, int(port)


if __name__ == "__main__":
    md = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    faulthandler.dump_traceback_later(360, exit=True)
    asyncio.run(main(sys.argv[1], md))
