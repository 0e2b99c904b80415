"""End-to-end check of descriptor exhaustion: `secure_chat` in a process limited to 64 open
files, flooded with up to 200 idle TCP connections (as many as the listen queue takes).

Usage: python tests/e2e/fd_exhaustion.py target/release/examples/secure_chat

Checks: the flood exhausts the descriptors (the server logs `accept failed`); meanwhile two
members connected before keep chatting (every message relayed) and answer pings; the log
holds one `accept failed` line for the whole episode, not one per failure; once the flood's
connections close, the server accepts again (it says so, with the count of failed accepts)
and a new member connects and chats.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
import time

from websockets.asyncio.client import connect

from serverproc import Checks, ServerProcess

PASSWORD = "reallyverysecure"
LIMIT = 64
FLOOD = 200
check = Checks()


def flood(host: str, port: int) -> list[socket.socket]:
    """Up to FLOOD idle TCP connections: the kernel completes them while its listen queue has
    room, the server accepts what its descriptors allow; it stops at the first that the full
    queue leaves waiting."""
    socks = []
    for _ in range(FLOOD):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect((host, port))
        except TimeoutError:
            s.close()
            break
        socks.append(s)
    return socks


async def main(binary: str) -> None:
    command = f"ulimit -n {LIMIT} && exec {shlex.quote(binary)} --addr 127.0.0.1:0"
    server = await ServerProcess.start("sh", "-c", command)
    socks: list[socket.socket] = []
    try:
        addr = (await server.wait_for(r"Chat at http://([0-9.]+:[0-9]+)/")).group(1)
        host, port = addr.rsplit(":", 1)
        url = f"ws://{addr}/ws?password={PASSWORD}"
        a = await connect(url, compression=None)
        b = await connect(url, compression=None)
        check(True, f"secure_chat runs with at most {LIMIT} open files; two members connected")

        socks = await asyncio.to_thread(flood, host, int(port))
        await server.wait_for(r"accept failed: .*(Too many open files|os error 24)")
        started = time.monotonic()
        check(len(socks) > LIMIT, f"{len(socks)} idle connections exhaust its descriptors: it logs `accept failed`")
        # While exhausted, for about 2 s: the members chat, and pings are answered.
        n = 0
        while time.monotonic() - started < 2:
            n += 1
            await a.send(f"still here {n}")
            got = await asyncio.wait_for(b.recv(), 5)
            assert got == f"still here {n}", got
            await asyncio.wait_for(await b.ping(), 5)
            await asyncio.sleep(0.05)  # pacing: about 20 messages a second
        check(n >= 10, f"meanwhile the members keep chatting: {n} messages relayed, every ping answered")
        lines = [line for line in server.lines if "accept failed" in line]
        check(len(lines) == 1, f"the log holds {len(lines)} `accept failed` line for the episode: {lines[0][-120:]!r}")

        for s in socks:
            s.close()
        socks = []
        again = await server.wait_for(r"accepting again, after ([0-9]+) failed accepts", timeout=10)
        check(True, f"the flood closes: the server accepts again (after {again.group(1)} failed accepts, logged once)")
        c = await asyncio.wait_for(connect(url, compression=None), 5)
        await c.send("new here")
        check(await asyncio.wait_for(a.recv(), 5) == "new here", "a new member connects and its message is relayed")
        lines = [line for line in server.lines if "accept failed" in line]
        check(len(lines) == 1, f"still {len(lines)} `accept failed` line in all")
        for ws in (a, b, c):
            await ws.close()
    finally:
        for s in socks:
            s.close()
        await server.kill()
    check.summary()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
