"""Runs the Autobahn TestSuite cases 1-10 (kosoku) against examples/echo.

Usage: python tests/e2e/autobahn.py target/release/examples/echo [REPORT_DIR]

Fails unless every case is OK, NON-STRICT or INFORMATIONAL (zero FAILED, zero ERROR) and the
echo server then shuts down cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys

from serverproc import ServerProcess

# Groups 1-10 of the suite (it has no group 8); 12-13 are compression, a later milestone.
GROUPS = [f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10)]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def behaviours(index: dict) -> dict[str, str]:
    """Case id -> behaviour, from kosoku's Autobahn-style index.json."""
    cases: dict[str, str] = {}
    for agent in index.values():
        for case, result in agent.items():
            cases[case] = result["behavior"]
    return cases


async def main(binary: str, outdir: str) -> int:
    server = await ServerProcess.start(binary, "--addr", "127.0.0.1:0")
    try:
        addr = (await server.wait_for(r"echo listening on ws://([0-9.]+:[0-9]+)/")).group(1)
        kosoku = os.path.join(os.path.dirname(sys.executable), "kosoku")
        args = [kosoku, addr, "-o", outdir, "-p", "2"]
        for group in GROUPS:
            args += ["-i", group]
        run = await asyncio.create_subprocess_exec(*args)
        await asyncio.wait_for(run.wait(), timeout=1200)
        with open(os.path.join(outdir, "index.json")) as f:
            cases = behaviours(json.load(f))
        tally = collections.Counter(cases.values())
        bad = sorted((c for c, b in cases.items() if b not in PASSING), key=lambda c: [int(p) for p in c.split(".")])
        print(f"autobahn: {len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
        for case in bad:
            print(f"autobahn: case {case}: {cases[case]}")
        server.terminate()
        code = await server.wait_exit()
        if code != 0:
            print(f"autobahn: echo exited with {code} on SIGTERM")
            bad.append("echo shutdown")
        if run.returncode != 0 and not bad:
            print(f"autobahn: kosoku exited with {run.returncode}")
            bad.append("kosoku exit status")
        print(f"{len(cases) - len(bad)} passed, {len(bad)} failed")
        return 1 if bad else 0
    finally:
        await server.kill()


if __name__ == "__main__":
    out = sys.argv[2] if len(sys.argv) > 2 else "reports/autobahn"
    sys.exit(asyncio.run(main(sys.argv[1], out)))
