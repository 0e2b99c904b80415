// Shared by the browser tests: child processes whose output lines can be awaited, free ports,
// numbered checks, and Chromium's path and flags (Debian's chromium, driven by playwright-core).

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
/** How long any single page or log condition may take. */
export const WAIT_MS = 10_000;

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
    this.proc = spawn(path, args, {
      cwd: ROOT,
      env: { RUST_LOG: "info", NO_COLOR: "1", PATH: "/usr/bin:/bin" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc.on("exit", () => this.notify());
    this.proc.on("error", (err) => { this.lines.push(`<spawn error: ${err.message}>`); this.notify(); });
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
