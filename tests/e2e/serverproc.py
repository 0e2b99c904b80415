"""Starts an example binary on 127.0.0.1:0 and follows its output; starts a redis-server on a
free port."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time


class Checks:
    """Numbered `ok N - what` lines, stopping at the first failed check."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, condition: bool, what: str) -> None:
        if not condition:
            raise AssertionError(what)
        self.count += 1
        print(f"ok {self.count} - {what}")

    def summary(self) -> None:
        print(f"{self.count} passed, 0 failed")


class ServerProcess:
    """An example server whose output lines can be awaited."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *argv: str) -> "ServerProcess":
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"RUST_LOG": "info", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    async def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Waits for an output line matching `pattern`; returns the match."""
        regex = re.compile(pattern)

        def find() -> re.Match[str] | None:
            for line in self.lines:
                if (m := regex.search(line)) is not None:
                    return m
            return None

        async def wait() -> re.Match[str]:
            async with self._changed:
                while (m := find()) is None:
                    if self.lines and self.lines[-1] == "<eof>":
                        raise AssertionError(f"server exited before printing {pattern!r}")
                    await self._changed.wait()
                return m

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            tail = "\n".join(self.lines[-20:])
            raise AssertionError(f"no line matching {pattern!r} in {timeout}s; output:\n{tail}") from None

    def terminate(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float = 20.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_redis(port: int) -> asyncio.subprocess.Process:
    """A `redis-server` on 127.0.0.1:`port`, without persistence, once it answers PING."""
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), 1)
            writer.close()
            if reply.startswith(b"+PONG"):
                return proc
        except OSError:
            pass
        if proc.returncode is not None or time.monotonic() > deadline:
            raise AssertionError(f"redis-server did not start on port {port}")
        await asyncio.sleep(0.01)
