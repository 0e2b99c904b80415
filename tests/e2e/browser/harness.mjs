// Shared by the browser tests: child processes whose output lines can be awaited, free ports,
// numbered checks, and Chromium's path and flags (Debian's chromium, driven by playwright-core).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
/** How long any single page or log condition may take. */
export const WAIT_MS = 10_000;

/**
 * The command line `node NAME.mjs BINARY [--screenshot PATH]`: the binary's path and where the
 * screenshot goes (`reports/SHOT` by default). Exits with status 2 and the usage when the
 * binary or Chromium is missing.
 */
export function commandLine(name, shot) {
  const argv = process.argv.slice(2);
  const binary = argv[0] ? resolve(argv[0]) : null;
  const at = argv.indexOf("--screenshot");
  const screenshot = resolve(at >= 0 ? argv[at + 1] : join(ROOT, "reports", shot));
  if (!binary || !existsSync(binary)) {
    console.error(`usage: node ${name}.mjs PATH/TO/BINARY [--screenshot PATH]`);
    process.exit(2);
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
    process.exit(2);
  }
  return { binary, screenshot };
}

/**
 * Runs a test: `body()` within `totalMs`; on a failure, `not ok` with the last lines of every
 * process in `procs` and the `pageErrors`; `cleanup()` in every case (the processes are killed
 * after it). Ends with `N passed, 0 failed`, or `N passed, 1 failed` and exit status 1.
 */
export async function run({ totalMs, procs, pageErrors, cleanup }, body) {
  const watchdog = setTimeout(() => {
    console.log(`not ok - the run took longer than ${totalMs / 1000} s`);
    console.log(`${checks.passed} passed, 1 failed`);
    for (const p of procs) p.kill();
    process.exit(1);
  }, totalMs);
  watchdog.unref();
  try {
    await body();
    console.log(`${checks.passed} passed, 0 failed`);
  } catch (err) {
    console.log(`not ok ${checks.passed + 1} - ${err.message}`);
    for (const p of procs) console.log(`  ${p.name} output (last lines):\n${p.tail()}`);
    if (pageErrors.length) console.log(`  page errors: ${pageErrors.join("; ")}`);
    console.log(`${checks.passed} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    try { await cleanup?.(); } catch { /* already gone */ }
    for (const p of procs) p.kill();
    clearTimeout(watchdog);
  }
}

/** Numbered `ok N - what` lines; throws at the first failed check. */
export const checks = { passed: 0 };
export function check(condition, what) {
  if (!condition) throw new Error(what);
  checks.passed += 1;
  console.log(`ok ${checks.passed} - ${what}`);
}

// ---- processes whose output lines can be awaited ---------------------------------------------

export class Proc {
  constructor(name, path, args) {
    this.name = name;
    this.lines = [];
    this.waiters = new Set();
    this.exit = new Promise((done) => {
      this.proc = spawn(path, args, {
        cwd: ROOT,
        env: { RUST_LOG: "info", NO_COLOR: "1", PATH: "/usr/bin:/bin" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      this.proc.on("exit", (code) => { this.notify(); done(code); });
      this.proc.on("error", (err) => { this.lines.push(`<spawn error: ${err.message}>`); this.notify(); done(-1); });
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      let rest = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop();
        // eslint-disable-next-line no-control-regex
        this.lines.push(...parts.map((l) => l.replace(/\x1b\[[0-9;]*m/g, "")));
        this.notify();
      });
    }
  }

  notify() { for (const w of this.waiters) w(); }

  /** Resolves with the first output line matching `regex` (its match), or throws after `ms`. */
  waitFor(regex, ms = WAIT_MS) {
    return new Promise((ok, fail) => {
      const look = () => {
        for (const line of this.lines) {
          const m = line.match(regex);
          if (m) return finish(null, m);
        }
        if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
          finish(new Error(`${this.name} exited before printing ${regex}\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => finish(new Error(`no ${this.name} line matching ${regex} in ${ms} ms\n${this.tail()}`)), ms);
      const finish = (err, m) => {
        clearTimeout(timer);
        this.waiters.delete(look);
        err ? fail(err) : ok(m);
      };
      this.waiters.add(look);
      look();
    });
  }

  /** The exit status, once the process has exited by itself within `ms`. */
  async waitExit(ms = WAIT_MS) {
    let timer;
    const timeout = new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`${this.name} still running ${ms} ms after SIGTERM`)), ms); });
    try { return await Promise.race([this.exit, timeout]); } finally { clearTimeout(timer); }
  }

  terminate() { if (this.proc.exitCode === null) this.proc.kill("SIGTERM"); }
  kill() { if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL"); }
  tail(n = 20) { return this.lines.slice(-n).map((l) => `    | ${l}`).join("\n"); }
}

/** A TCP port free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}
