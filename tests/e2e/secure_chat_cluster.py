"""End-to-end check of two `secure_chat --redis` processes sharing one Redis, with a
third-party client (`websockets`), as a new user would run them.

Usage: python tests/e2e/secure_chat_cluster.py target/release/examples/secure_chat
(built with `--features redis`; `redis-server` on the PATH)

Starts its own `redis-server` on a free port and two chat processes on it. Checks: a message
on either node reaches every other member on both; with Redis killed (SIGKILL) each node still
relays among its own members without delay and accepts new ones, and says once that the link
is down; with Redis back on its port, cross-node delivery resumes within 20 s.
"""

from __future__ import annotations

import asyncio
import sys
import time

from websockets.asyncio.client import connect

from serverproc import Checks, ServerProcess, free_port, start_redis

PASSWORD = "reallyverysecure"
PER_NODE = 5
check = Checks()


async def members_of(addr: str, count: int) -> list:
    return [await connect(f"ws://{addr}/ws?password={PASSWORD}", open_timeout=10) for _ in range(count)]


async def all_receive(members: list, text: str, timeout: float = 10) -> bool:
    received = await asyncio.wait_for(asyncio.gather(*(m.recv() for m in members)), timeout)
    return all(r == text for r in received)


async def main(binary: str) -> None:
    port = free_port()
    redis = await start_redis(port)
    url = f"redis://127.0.0.1:{port}/"
    nodes = [await ServerProcess.start(binary, "--addr", "127.0.0.1:0", "--redis", url) for _ in range(2)]
    try:
        addrs = [(await n.wait_for(r"Chat at http://([0-9.]+:[0-9]+)/")).group(1) for n in nodes]
        for n in nodes:
            await n.wait_for(r"Node [0-9a-f]{8} of the chat shared over Redis")
            await n.wait_for(r"Redis backplane up")
        check(True, "two secure_chat processes run as nodes of one chat over Redis, both linked")
        a = await members_of(addrs[0], PER_NODE)
        b = await members_of(addrs[1], PER_NODE)

        await a[0].send("hello from node a")
        check(await all_receive(a[1:] + b, "hello from node a"),
              f"a message on node a reached the other {PER_NODE - 1} members there and the {PER_NODE} on node b")
        await b[0].send("hello from node b")
        check(await all_receive(a + b[1:], "hello from node b"),
              f"a message on node b reached the other {PER_NODE - 1} members there and the {PER_NODE} on node a")

        redis.kill()
        await redis.wait()
        for n in nodes:
            await n.wait_for(r"WARN.*Redis backplane down", timeout=10)
        check(True, "each node logged that its link to Redis is down")
        started = time.monotonic()
        await a[0].send("a alone")
        check(await all_receive(a[1:], "a alone", timeout=2), "with Redis down, node a still relays among its own members")
        elapsed = time.monotonic() - started
        check(elapsed < 0.5, f"without waiting on Redis ({elapsed * 1000:.0f} ms)")
        newcomer = await connect(f"ws://{addrs[1]}/ws?password={PASSWORD}", open_timeout=10)
        await newcomer.send("b alone")
        check(await all_receive(b, "b alone", timeout=2), "node b accepts a new member and relays it to its own")
        b.append(newcomer)
        outages = [sum(1 for line in n.lines if "WARN" in line) for n in nodes]
        check(outages == [1, 1], f"the outage is logged once per node, not per message or per retry ({outages})")

        redis = await start_redis(port)
        back = time.monotonic()
        for n in nodes:
            await n.wait_for(r"Redis backplane up again", timeout=20)
        check(True, f"both nodes logged that Redis is back ({time.monotonic() - back:.1f} s after it answered PING)")
        # Until the node's link is back its broadcasts stay local; send until one crosses.
        crossed = False
        while time.monotonic() - back < 20 and not crossed:
            await a[0].send("across again")
            for m in a[1:]:
                await asyncio.wait_for(m.recv(), 5)
            try:
                crossed = await all_receive(b, "across again", timeout=0.25)
            except TimeoutError:
                for m in b:  # drain what some received, so the next round starts even
                    try:
                        await asyncio.wait_for(m.recv(), 0.05)
                    except TimeoutError:
                        pass
        check(crossed, f"after Redis returned, cross-node delivery resumed ({time.monotonic() - back:.1f} s, limit 20 s)")
        for m in a + b:
            await m.close()
    finally:
        for n in nodes:
            await n.kill()
        if redis.returncode is None:
            redis.kill()
            await redis.wait()
    check.summary()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
