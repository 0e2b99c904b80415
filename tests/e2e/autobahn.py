"""Runs the Autobahn TestSuite (kosoku) against examples/echo, twice:

1. cases 1-10 against `echo`;
2. cases 1-10 and 12-13 (permessage-deflate, RFC 7692) against `echo --deflate`.

Usage: python tests/e2e/autobahn.py target/release/examples/echo [REPORT_DIR] [--no-deflate]

Reports go to REPORT_DIR and REPORT_DIR/deflate. Fails unless every case of both runs is OK
or INFORMATIONAL (zero FAILED, zero ERROR, zero NON-STRICT, and no UNIMPLEMENTED compression
case) and the echo server then shuts down cleanly on SIGTERM. `--no-deflate` skips the second
run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys

from serverproc import ServerProcess

# Groups 1-10 of the suite (it has no group 8).
GROUPS = [f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10)]
# 12-13: permessage-deflate, against `echo --deflate` (threshold 0: every echo that shrinks is
# compressed; one that would not shrink goes out uncompressed, as RFC 7692 allows).
DEFLATE_GROUPS = GROUPS + ["12.*", "13.*"]

# kosoku 0.1.0's case 12/13 handler (kosoku/cases/case12_x_x.py, `onMessage`, py2 code) gets
# a text message that arrived uncompressed as a `str` of one character per byte and hashes it,
# which Python 3 refuses ("Strings must be encoded before hashing"): ERROR for a reply RFC 7692
# allows. kosoku runs through this wrapper, which hands that handler the message's bytes (as it
# gets for a compressed one); a character past U+00FF would raise and still report ERROR.
KOSOKU = """
import importlib
import sys
from kosoku._caseindex import initialize_shims
from kosoku._cli import main

# kosoku imports its cases as top-level modules once its shims are on sys.path.
initialize_shims()
case12 = importlib.import_module("case12_x_x")

original = case12.onMessage

def on_message(self, msg, binary):
    if isinstance(msg, str):
        msg = msg.encode("latin-1")
    return original(self, msg, binary)

# The case classes are built at import, in the lists Case12_X_X and Case13_X_X.
for value in list(vars(case12).values()):
    for cls in value if isinstance(value, list) else [value]:
        if isinstance(cls, type) and cls.__dict__.get("onMessage") is original:
            cls.onMessage = on_message
case12.onMessage = on_message
sys.argv[0] = "kosoku"
sys.exit(main())
"""
# NON-STRICT fails too: a reply written late or not at all (the answer to a valid message
# before a bad frame, a close that waited for the rest of a frame with invalid UTF-8).
PASSING = {"OK", "INFORMATIONAL"}


def behaviours(index: dict) -> dict[str, str]:
    """Case id -> behaviour, from kosoku's Autobahn-style index.json."""
    cases: dict[str, str] = {}
    for agent in index.values():
        for case, result in agent.items():
            cases[case] = result["behavior"]
    return cases


async def run(name: str, argv: list[str], groups: list[str], outdir: str) -> list[str]:
    """One suite run against one echo server; the failed cases (or checks)."""
    server = await ServerProcess.start(*argv, "--addr", "127.0.0.1:0")
    try:
        addr = (await server.wait_for(r"echo listening on ws://([0-9.]+:[0-9]+)/")).group(1)
        args = [sys.executable, "-c", KOSOKU, addr, "-o", outdir, "-p", "2"]
        for group in groups:
            args += ["-i", group]
        proc = await asyncio.create_subprocess_exec(*args)
        await asyncio.wait_for(proc.wait(), timeout=1200)
        with open(os.path.join(outdir, "index.json")) as f:
            cases = behaviours(json.load(f))
        tally = collections.Counter(cases.values())
        bad = sorted((c for c, b in cases.items() if b not in PASSING), key=lambda c: [int(p) for p in c.split(".")])
        print(f"autobahn ({name}): {len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
        for case in bad:
            print(f"autobahn ({name}): case {case}: {cases[case]}")
        server.terminate()
        code = await server.wait_exit()
        if code != 0:
            print(f"autobahn ({name}): echo exited with {code} on SIGTERM")
            bad.append("echo shutdown")
        if proc.returncode != 0 and not bad:
            print(f"autobahn ({name}): kosoku exited with {proc.returncode}")
            bad.append("kosoku exit status")
        print(f"autobahn ({name}): {len(cases) - len(bad)} passed, {len(bad)} failed")
        return bad
    finally:
        await server.kill()


async def main(binary: str, outdir: str, deflate: bool) -> int:
    bad = await run("echo, 1-10", [binary], GROUPS, outdir)
    if deflate:
        bad += await run(
            "echo --deflate, 1-10 and 12-13",
            [binary, "--deflate"],
            DEFLATE_GROUPS,
            os.path.join(outdir, "deflate"),
        )
    return 1 if bad else 0


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    positional = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not positional or any(f != "--no-deflate" for f in flags):
        print(__doc__)
        sys.exit(2)
    out = positional[1] if len(positional) > 1 else "reports/autobahn"
    sys.exit(asyncio.run(main(positional[0], out, "--no-deflate" not in flags)))
