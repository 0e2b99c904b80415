"""End-to-end check of examples/rooms' protocol (its module doc) against two `rooms --redis`
nodes sharing one Redis, with a third-party client (`websockets`).

Usage: python tests/e2e/rooms_cluster.py target/release/examples/rooms
(built with `--features json,redis`; `redis-server` on the PATH)

Starts its own `redis-server` on a free port and two `rooms` processes on it, with
`--history 5`. Checks: the page is served; no or an empty `user` gets 400; bad commands get an
`error` reply and the connection stays open; join and leave events reach the room's other
members on both nodes, on leave and on close; `presence` lists the members of both nodes, each
user once, sorted, and drops a SIGKILLed node's members within the cluster's expiry; a member
who leaves after offset k and comes back on the OTHER node with `since` gets exactly k+1..top
as `message`s (the same bytes the live members got), then `joined` with `recovered: true` and
`offset` = top, then the live messages once; a wrong epoch, or an offset older than the 5
messages kept, gets `recovered: false` and nothing replayed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from serverproc import Checks, ServerProcess, free_port, start_redis

KEEP = 5  # --history
WAIT = 5.0  # seconds for any single frame
check = Checks()


class Client:
    """One connection of one user, speaking the rooms protocol."""

    def __init__(self, ws: ClientConnection, user: str, label: str) -> None:
        self.ws = ws
        self.user = user
        self.label = label  # how the checks name this connection

    @classmethod
    async def open(cls, addr: str, user: str, label: str | None = None) -> "Client":
        return cls(await connect(f"ws://{addr}/ws?user={user}", open_timeout=10), user, label or user)

    async def send(self, **command) -> None:
        await self.ws.send(json.dumps(command))

    async def raw(self, timeout: float = WAIT) -> str:
        try:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: nothing received in {timeout} s") from None

    async def recv(self, timeout: float = WAIT) -> dict:
        return json.loads(await self.raw(timeout))

    async def expect(self, kind: str) -> dict:
        """The next frame, which must be of this type."""
        frame = await self.recv()
        if frame.get("type") != kind:
            raise AssertionError(f"{self.label}: expected a {kind!r}, got {frame}")
        return frame

    async def join(self, room: str, since: dict | None = None) -> tuple[list[str], dict]:
        """Joins; the raw frames that came before `joined` (the replay), and `joined`."""
        if since is None:
            await self.send(op="join", room=room)
        else:
            await self.send(op="join", room=room, since=since)
        before = []
        while True:
            raw = await self.raw()
            frame = json.loads(raw)
            if frame.get("type") == "joined" and frame.get("room") == room:
                return before, frame
            before.append(raw)

    async def say(self, room: str, text: str) -> str:
        """Says `text` and waits for it to come back with its position; the raw frame."""
        await self.send(op="say", room=room, text=text)
        while True:
            raw = await self.raw()
            frame = json.loads(raw)
            if frame.get("type") == "message" and frame.get("user") == self.user and frame.get("text") == text:
                return raw
            if frame.get("type") == "error":
                raise AssertionError(f"{self.label}: say {text!r} failed: {frame}")

    async def presence(self, room: str) -> list[str]:
        await self.send(op="presence", room=room)
        return (await self.expect("presence"))["users"]

    async def messages_until_presence(self, room: str) -> list[dict]:
        """Every frame before the reply to a `presence` sent now: a barrier on this connection."""
        await self.send(op="presence", room=room)
        frames = []
        while (frame := await self.recv())["type"] != "presence":
            frames.append(frame)
        return frames

    async def close(self) -> None:
        await self.ws.close()


async def refused(url: str) -> tuple[int, bytes]:
    try:
        async with connect(url):
            pass
    except InvalidStatus as err:
        return err.response.status_code, err.response.body or b""
    raise AssertionError(f"{url} was accepted")


def offsets(raws: list[str]) -> list[int]:
    return [json.loads(r)["offset"] for r in raws]


async def main(binary: str) -> None:
    port = free_port()
    redis = await start_redis(port)
    url = f"redis://127.0.0.1:{port}/"
    nodes = [
        await ServerProcess.start(binary, "--addr", "127.0.0.1:0", "--redis", url, "--history", str(KEEP))
        for _ in range(2)
    ]
    clients: list[Client] = []

    async def client(addr: str, user: str, label: str | None = None) -> Client:
        c = await Client.open(addr, user, label)
        clients.append(c)
        return c

    try:
        addrs = [(await n.wait_for(r"Rooms at http://([0-9.]+:[0-9]+)/")).group(1) for n in nodes]
        for n in nodes:
            await n.wait_for(r"Node [0-9a-f]{8} of the rooms shared over Redis")
            await n.wait_for(r"Redis backplane up")
        check(True, f"two rooms processes (--history {KEEP}) run as nodes of one chat over Redis, both linked")
        a, b = addrs

        page = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://{a}/", timeout=10).read())
        check(b"<title>" in page and b"new WebSocket(" in page, "GET / serves the rooms page")

        for query in ["", "?user=", "?other=x"]:
            status, body = await refused(f"ws://{a}/ws{query}")
            check(status == 400 and b"user" in body, f"GET /ws{query} gets 400 ({body.decode()!r})")

        # ---- bad commands: an error each, and the connection stays open --------------------
        ada = await client(a, "ada")
        bad = [
            ("not JSON", "hello"),
            ("JSON that is not a command", json.dumps([1, 2])),
            ("an unknown op", json.dumps({"op": "shout", "room": "lobby"})),
            ("join without a room", json.dumps({"op": "join"})),
            ("join of an empty room name", json.dumps({"op": "join", "room": ""})),
            ("say in a room not joined", json.dumps({"op": "say", "room": "lobby", "text": "hi"})),
            ("leave of a room not joined", json.dumps({"op": "leave", "room": "lobby"})),
            ("since with a bad epoch", json.dumps({"op": "join", "room": "lobby", "since": {"offset": 1, "epoch": "not an epoch!"}})),
            ("since with a negative offset", json.dumps({"op": "join", "room": "lobby", "since": {"offset": -1, "epoch": "abc"}})),
            ("since with an offset that is not an integer", json.dumps({"op": "join", "room": "lobby", "since": {"offset": 1.5, "epoch": "abc"}})),
            ("since without an epoch", json.dumps({"op": "join", "room": "lobby", "since": {"offset": 1}})),
        ]
        for what, text in bad:
            await ada.ws.send(text)
            frame = await ada.recv()
            check(frame.get("type") == "error" and isinstance(frame.get("message"), str) and frame["message"],
                  f"{what}: an error reply ({frame.get('message')!r})")
        await ada.ws.send(b"\x01\x02")
        frame = await ada.recv()
        check(frame.get("type") == "error", f"a binary message: an error reply ({frame.get('message')!r})")
        check(await ada.presence("lobby") == [], "after every bad command the connection is open and answers")
        _, joined = await ada.join("lobby")
        check(joined["recovered"] is False and joined["offset"] == 0, f"and a join still works: {joined}")
        await ada.send(op="say", room="lobby", text="")
        frame = await ada.recv()
        check(frame.get("type") == "error", f"say with an empty text: an error reply ({frame.get('message')!r})")

        # ---- join and leave events, presence on one node -----------------------------------
        bob = await client(a, "bob")
        await bob.join("lobby")
        check(await ada.expect("join") == {"type": "join", "room": "lobby", "user": "bob"},
              "bob joins the lobby on node A: ada (node A) gets a join event")
        check(await bob.messages_until_presence("lobby") == [], "bob gets no event about himself")
        cat = await client(b, "cat")
        await cat.join("lobby")
        for member in (ada, bob):
            event = await member.expect("join")
            check(event == {"type": "join", "room": "lobby", "user": "cat"},
                  f"cat joins on node B: {member.label} on node A gets the join event")
        ada2 = await client(a, "ada", "ada's second connection")
        await ada2.join("lobby")
        for member in (ada, bob, cat):
            await member.expect("join")
        users = await bob.presence("lobby")
        check(users == ["ada", "bob", "cat"],
              f"presence on node A: the members of both nodes, each user once (ada has two connections), sorted: {users}")
        check(await cat.presence("lobby") == ["ada", "bob", "cat"], "and the same list on node B")
        await bob.send(op="leave", room="lobby")
        for member in (ada, ada2, cat):
            check(await member.expect("leave") == {"type": "leave", "room": "lobby", "user": "bob"},
                  f"bob leaves: {member.label} gets the leave event")
        check(await bob.messages_until_presence("lobby") == [] and await bob.presence("lobby") == ["ada", "cat"],
              "bob is out of the lobby: no event for himself, and presence no longer lists him")
        await bob.send(op="say", room="lobby", text="still here?")
        check((await bob.recv()).get("type") == "error", "bob can no longer say anything in the lobby")
        await cat.close()
        for member in (ada, ada2):
            check(await member.expect("leave") == {"type": "leave", "room": "lobby", "user": "cat"},
                  f"cat's connection on node B closes: {member.label} on node A gets the leave event")
        await ada2.close()
        check(await ada.expect("leave") == {"type": "leave", "room": "lobby", "user": "ada"},
              "ada's second connection closes: her first one gets that leave too")

        # ---- recovery on the other node ------------------------------------------------------
        room = "history"
        eve = await client(a, "eve")
        sam = await client(b, "sam")
        _, first = await eve.join(room)
        await sam.join(room)
        await eve.expect("join")
        epoch = first["epoch"]
        live: dict[int, str] = {}  # offset -> the raw frame sam got live
        for i in range(1, 4):
            raw = await sam.say(room, f"before {i}")
            live[json.loads(raw)["offset"]] = raw
        got = [await eve.raw() for _ in range(3)]
        check(offsets(got) == [1, 2, 3] and got == [live[1], live[2], live[3]],
              "sam (node B) says 3 messages: eve (node A) gets offsets 1, 2, 3, the same bytes as sam")
        k = 3
        await eve.close()
        check(await sam.expect("leave") == {"type": "leave", "room": room, "user": "eve"}, "eve goes away after offset 3")
        for i in range(4, 8):
            raw = await sam.say(room, f"missed {i}")
            live[json.loads(raw)["offset"]] = raw
        top = max(live)
        check(top == 7, "sam says 4 more while she is away (top is 7)")
        eve = await client(b, "eve")
        replay, joined = await eve.join(room, {"offset": k, "epoch": epoch})
        check(offsets(replay) == list(range(k + 1, top + 1)),
              f"eve comes back on node B with since {k}: exactly {k + 1}..{top} first, as messages ({offsets(replay)})")
        check(replay == [live[o] for o in range(k + 1, top + 1)], "the replayed messages are the bytes the live members got")
        check(joined == {"type": "joined", "room": room, "epoch": epoch, "offset": top, "recovered": True},
              f"then joined with recovered: true and offset {top} ({joined})")
        await sam.expect("join")
        live[8] = await sam.say(room, "live 8")
        check(await eve.raw() == live[8], "the next live message reaches her once, offset 8")
        check(await eve.messages_until_presence(room) == [], "and nothing else: no repeat of any offset")
        replay, joined = await eve.join(room, {"offset": 8, "epoch": epoch})
        check(replay == [] and joined["recovered"] is True and joined["offset"] == 8,
              "a join with since = top: recovered, nothing to replay")

        # ---- honest answers: wrong epoch, too old ---------------------------------------------
        zoe = await client(a, "zoe")
        replay, joined = await zoe.join(room, {"offset": 3, "epoch": "wrongepoch"})
        check(replay == [] and joined["recovered"] is False and joined["offset"] == 8 and joined["epoch"] == epoch,
              f"since from another epoch: recovered: false, nothing replayed, offset 8 ({joined})")
        old = "window"
        _, first = await sam.join(old)
        for i in range(1, 13):
            await sam.say(old, f"w{i}")
        window = first["epoch"]
        uma = await client(a, "uma")
        replay, joined = await uma.join(old, {"offset": 2, "epoch": window})
        check(replay == [] and joined["recovered"] is False and joined["offset"] == 12,
              f"since 2 with 12 messages said and {KEEP} kept: recovered: false, nothing replayed ({joined})")
        vic = await client(b, "vic")
        replay, joined = await vic.join(old, {"offset": 12 - KEEP, "epoch": window})
        check(offsets(replay) == list(range(12 - KEEP + 1, 13)) and joined["recovered"] is True,
              f"since {12 - KEEP}: the {KEEP} kept messages are exactly what was missed, recovered: true")
        replay, joined = await vic.join(old, {"offset": 13, "epoch": window})
        check(replay == [] and joined["recovered"] is False, "since ahead of the room: recovered: false")

        # ---- presence across nodes, and a node killed without a word ------------------------
        pair = "both"
        await zoe.join(pair)
        await vic.join(pair)
        check(await zoe.expect("join") == {"type": "join", "room": pair, "user": "vic"},
              "vic (node B) joins a room zoe (node A) is in: she gets the join event")
        users = await zoe.presence(pair)
        check(users == ["vic", "zoe"], f"presence on node A lists zoe (A) and vic (B): {users}")
        users = await vic.presence(pair)
        check(users == ["vic", "zoe"], f"and on node B: {users}")
        await nodes[1].kill()
        started = asyncio.get_running_loop().time()
        while (users := await zoe.presence(pair)) != ["zoe"]:
            if asyncio.get_running_loop().time() - started > 10:
                break
            await asyncio.sleep(0.2)  # polling the answer: presence has no event for this
        took = asyncio.get_running_loop().time() - started
        check(users == ["zoe"] and took < 6,
              f"node B is killed (SIGKILL): presence on node A drops vic within {took:.1f} s (4 s documented, 6 allowed)")

        for c in clients:
            await c.close()
    finally:
        for n in nodes:
            await n.kill()
        if redis.returncode is None:
            redis.kill()
            await redis.wait()
    check.summary()


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(args[0]))
