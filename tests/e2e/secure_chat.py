"""End-to-end check of examples/secure_chat with a third-party client (`websockets`).

Usage: python tests/e2e/secure_chat.py target/release/examples/secure_chat

Checks, as a new user would: the page is served; no password and a wrong password get 403
with the body "Nope. Valid password required."; the password gets 101 and permessage-deflate
(which `websockets` offers by default); a message from one of 50 members reaches the other 49
and not its sender, a short one uncompressed and a long one (about 4 KB) intact and compressed;
an application close code is accepted; on SIGTERM every member gets 1001 and the process exits
by itself with status 0.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from serverproc import Checks, ServerProcess

PASSWORD = "reallyverysecure"
MEMBERS = 50
check = Checks()


def long_text(size: int) -> str:
    """About `size` bytes of varied chat text, some of it outside ASCII."""
    words = "the server relays every message to all other members ça va ✓ naïve über 日本語 chat deflate".split()
    out: list[str] = []
    while len(" ".join(out).encode()) < size:
        out.append(f"{words[len(out) * 7 % len(words)]}{len(out) % 97}")
    return " ".join(out)


def record_frames(member) -> list[tuple[bool, int]]:
    """(RSV1, payload length on the wire) of every frame `member` receives from now on."""
    frames: list[tuple[bool, int]] = []
    extension = member.protocol.extensions[0]
    decode = extension.decode

    def spy(frame, **kwargs):
        frames.append((frame.rsv1, len(frame.data)))
        return decode(frame, **kwargs)

    extension.decode = spy
    return frames


async def refused(url: str) -> tuple[int, bytes]:
    try:
        async with connect(url):
            pass
    except InvalidStatus as err:
        return err.response.status_code, err.response.body or b""
    raise AssertionError(f"{url} was accepted")


async def main(binary: str) -> None:
    server = await ServerProcess.start(binary, "--addr", "127.0.0.1:0")
    try:
        addr = (await server.wait_for(r"Chat at http://([0-9.]+:[0-9]+)/")).group(1)
        base = f"ws://{addr}/ws"

        page = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://{addr}/", timeout=10).read())
        check(b"new WebSocket(" in page and b"<title>ws" in page, "GET / serves the chat page")

        status, body = await refused(base)
        check((status, body) == (403, b"Nope. Valid password required."), "no password: 403 and its body")
        status, body = await refused(f"{base}?password=guess")
        check((status, body) == (403, b"Nope. Valid password required."), "wrong password: 403 and its body")

        members = []
        for _ in range(MEMBERS):
            members.append(await connect(f"{base}?password={PASSWORD}", open_timeout=10))
        check(len(members) == MEMBERS, f"{MEMBERS} members got 101 with the password")
        extensions = {m.response.headers.get("Sec-WebSocket-Extensions", "") for m in members}
        check(len(extensions) == 1 and extensions.pop().startswith("permessage-deflate")
              and all(type(m.protocol.extensions[0]).__name__ == "PerMessageDeflate" for m in members),
              f"all {MEMBERS} members negotiated permessage-deflate")
        await server.wait_for(r"Successful Handshake for user with client id [0-9a-f]{8}-\d+ from 127\.0\.0\.1:\d+")
        check(True, "on_open logged the successful handshake with id and address")

        frames = record_frames(members[1])
        await members[0].send("hello from member 0")
        received = await asyncio.wait_for(
            asyncio.gather(*(m.recv() for m in members[1:])), timeout=20
        )
        check(all(r == "hello from member 0" for r in received), f"the other {MEMBERS - 1} members got the message")
        await server.wait_for(r"User with client id [0-9a-f]{8}-\d+ from 127\.0\.0\.1:\d+ sent: hello from member 0")
        check(True, "on_data logged the message with the sender's id and address, as the seed's page does")
        await members[1].send("reply from member 1")
        first = await asyncio.wait_for(members[0].recv(), timeout=20)
        check(first == "reply from member 1", "the sender did not get its own message back")
        for m in members[2:]:
            await asyncio.wait_for(m.recv(), timeout=20)
        check(frames == [(False, len("hello from member 0"))], "the short message travelled uncompressed (under 256 B)")

        text = long_text(4000)
        size = len(text.encode())
        await members[0].send(text)
        received = await asyncio.wait_for(
            asyncio.gather(*(m.recv() for m in members[1:])), timeout=20
        )
        check(all(r == text for r in received), f"a {size} B message reached the other {MEMBERS - 1} members intact")
        check(len(frames) == 2 and frames[1][0] and frames[1][1] < size // 2,
              f"it travelled compressed: RSV1 set, {frames[-1][1]} B on the wire for {size} B")

        leaver = members.pop()
        await leaver.close(code=4000, reason="see you")
        check(leaver.close_code == 4000, "an application close code (4000) is accepted and echoed")
        await server.wait_for(r"closed connection with code 4000")
        check(True, "on_close logged the code 4000")

        server.terminate()
        codes = []
        for m in members:
            try:
                await asyncio.wait_for(m.recv(), timeout=20)
            except ConnectionClosed as closed:
                codes.append((closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None)
        check(codes == [(1001, "Server shutting down")] * len(members), f"on SIGTERM all {len(members)} members got 1001")
        code = await server.wait_exit()
        check(code == 0, "the process exited by itself with status 0")
    finally:
        await server.kill()
    check.summary()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
