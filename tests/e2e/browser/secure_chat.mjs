// Real-browser end-to-end test of examples/secure_chat: headless Debian Chromium driven by
// playwright-core (no bundled browser).
//
// Usage: node tests/e2e/browser/secure_chat.mjs target/release/examples/secure_chat [--screenshot PATH]
//
// Starts the binary on 127.0.0.1:0 and, as a user would, in tabs of one browser: loads the page
// from the server, enters the password and joins in two tabs; both negotiate permessage-deflate
// (`WebSocket.extensions`); a message sent in tab A shows in tab B's log (and as "mine" in A,
// never echoed back); a long message (about 4 KB) goes both ways intact and, on the wire,
// compressed; a wrong password shows the refusal on the page; Leave closes with 1000; the page's
// WebSocket reports open and closed; on SIGTERM the open tabs show the disconnect with code 1001
// and the server exits 0. Tab B reaches the server through a TCP relay in this process that
// records each WebSocket frame's header (RSV1, opcode, length): neither the page nor CDP's
// `Network.webSocketFrame*` events show whether a frame was compressed. Every wait is on a page
// or log condition with a timeout, never a fixed sleep. Ends with `N passed, 0 failed`; exits 1
// on failure.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Proc, ROOT, WAIT_MS, check, commandLine, run } from "./harness.mjs";

const PASSWORD = "reallyverysecure";
const TOTAL_MS = 120_000; // the whole run, browser start included
const { binary, screenshot } = commandLine("secure_chat", "browser-chat.png");

// ---- the relay: tab B's TCP connections, with the WebSocket frame headers recorded -----------

class Relay {
  constructor(host, port) {
    this.frames = []; // { to: "server" | "browser", rsv1, opcode, length }
    this.sockets = new Set();
    this.server = createServer((browser) => {
      const upstream = connect(port, host);
      for (const s of [browser, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => { browser.destroy(); upstream.destroy(); });
      }
      browser.pipe(upstream);
      upstream.pipe(browser);
      browser.on("data", this.reader("server", /^GET [^\r]*\r\n(?:.*\r\n)*upgrade: *websocket\r\n/i));
      upstream.on("data", this.reader("browser", /^HTTP\/1\.1 101 /));
    });
  }

  /** Resolves with the relay's port once it listens on 127.0.0.1. */
  listen() {
    return new Promise((ok) => this.server.listen(0, "127.0.0.1", () => ok(this.server.address().port)));
  }

  close() {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  /** A `data` listener for one direction of one connection: after an HTTP head matching
   * `upgrade`, every chunk is parsed as WebSocket frames; any other head ends the parsing. */
  reader(to, upgrade) {
    let buf = Buffer.alloc(0);
    let mode = "head";
    return (chunk) => {
      if (mode === "off") return;
      buf = Buffer.concat([buf, chunk]);
      if (mode === "head") {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        mode = upgrade.test(buf.subarray(0, end + 2).toString("latin1")) ? "frames" : "off";
        buf = buf.subarray(end + 4);
      }
      while (mode === "frames" && buf.length >= 2) {
        let length = buf[1] & 0x7f;
        let at = 2;
        if (length === 126) {
          if (buf.length < 4) return;
          length = buf.readUInt16BE(2);
          at = 4;
        } else if (length === 127) {
          if (buf.length < 10) return;
          length = Number(buf.readBigUInt64BE(2));
          at = 10;
        }
        if (buf[1] & 0x80) at += 4; // masking key
        if (buf.length < at + length) return;
        this.frames.push({ to, rsv1: (buf[0] & 0x40) !== 0, opcode: buf[0] & 0x0f, length });
        buf = buf.subarray(at + length);
      }
    };
  }

  /** Text frames (opcode 1) recorded so far in one direction. */
  textFrames(to) { return this.frames.filter((f) => f.to === to && f.opcode === 1); }
}

/** About `bytes` bytes of varied chat text, some of it outside ASCII, on one line. */
function longText(bytes) {
  const words = ["the", "server", "relays", "every", "message", "to", "all", "other", "members",
    "ça", "va", "✓", "naïve", "über", "日本語", "chat", "deflate", "window", "frame", "tab"];
  const out = [];
  for (let i = 0; Buffer.byteLength(out.join(" ")) < bytes; i++) out.push(`${words[(i * 7) % words.length]}${i % 97}`);
  return out.join(" ");
}

// ---- the page: every WebSocket the page makes records what it reports ------------------------

// Runs in each page before its own scripts: wraps WebSocket so the test can read what the
// page's socket itself reported (open, close code, readyState) next to what the page shows.
function recordSockets() {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const rec = { url: String(args[0]), events: [], socket: this };
      window.__sockets.push(rec);
      this.addEventListener("open", () => rec.events.push({ type: "open" }));
      this.addEventListener("error", () => rec.events.push({ type: "error" }));
      this.addEventListener("close", (e) => rec.events.push({ type: "close", code: e.code, reason: e.reason, wasClean: e.wasClean }));
    }
  };
}

/** What the page's last WebSocket reported: { readyState, events } (or null if it made none). */
const lastSocket = (page) => page.evaluate(() => {
  const rec = window.__sockets.at(-1);
  return rec ? { url: rec.url, readyState: rec.socket.readyState, events: rec.events } : null;
});

/** Waits until `fn(arg)` is truthy in the page; the error names `what`. */
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const status = await page.locator("#status").textContent().catch(() => "?");
    throw new Error(`${what}: not within ${WAIT_MS} ms (status: ${JSON.stringify(status)}; ${err.message.split("\n")[0]})`);
  }
}

const statusIs = (page, state, what) =>
  until(page, what, (s) => document.getElementById("status").dataset.state === s, state);

async function enter(page, base, password, { load = true } = {}) {
  if (load) await page.goto(`${base}/`, { timeout: WAIT_MS });
  await page.fill("#password", password);
  await page.click("#connect");
}

const logTexts = (page, kind) =>
  page.$$eval(`#log li.${kind} .text`, (els) => els.map((e) => e.textContent));

// ---- the test -------------------------------------------------------------------------------

let relay = null;
let context = null;
const server = new Proc("secure_chat", binary, ["--addr", "127.0.0.1:0"]);
const procs = [server];
const pageErrors = [];
const profile = mkdtempSync(join(tmpdir(), "ws-chromium-"));
const cleanup = async () => {
  await context?.close().catch(() => {});
  relay?.close();
  rmSync(profile, { recursive: true, force: true });
};

await run({ totalMs: TOTAL_MS, procs, pageErrors, cleanup }, async () => {
  const addr = (await server.waitFor(/Chat at http:\/\/([0-9.]+:[0-9]+)\//))[1];
  const base = `http://${addr}`;
  const [host, port] = addr.split(":");
  relay = new Relay(host, Number(port));
  const relayBase = `http://127.0.0.1:${await relay.listen()}`;

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 760, height: 640 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(WAIT_MS);
  await context.addInitScript(recordSockets);
  const newTab = async (name) => {
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
    return page;
  };

  // Tab A: the page, served by the server itself, then the password.
  const a = await newTab("A");
  await pageLoads(a, base);
  await enter(a, base, PASSWORD, { load: false });
  await statusIs(a, "open", "tab A joins with the password");
  check(await a.locator("#status").textContent() === "Connected.", "tab A shows Connected. after joining");
  let sa = await lastSocket(a);
  check(sa.url === `ws://${addr}/ws?password=${PASSWORD}` && sa.readyState === 1 && sa.events.some((e) => e.type === "open"),
    "tab A's WebSocket reports open (readyState 1) on the server's own origin");
  check(await a.locator("#message").isEnabled() && (await a.locator("#connect").textContent()) === "Leave",
    "tab A's composer is enabled and the button reads Leave");

  const b = await newTab("B");
  await enter(b, relayBase, PASSWORD);
  await statusIs(b, "open", "tab B (through the relay) joins with the password");
  check((await lastSocket(b)).readyState === 1, "tab B's WebSocket reports open (readyState 1)");
  for (const [name, page] of [["A", a], ["B", b]]) {
    const extensions = await page.evaluate(() => window.__sockets.at(-1).socket.extensions);
    check(extensions.startsWith("permessage-deflate"),
      `tab ${name}'s WebSocket negotiated permessage-deflate (extensions: ${JSON.stringify(extensions)})`);
  }
  await server.waitFor(/Successful Handshake for user with client id [0-9a-f]{8}-\d+ from 127\.0\.0\.1:\d+/);
  check(true, "the server logged the browser's successful handshake");

  // A message typed in A shows in B (as theirs) and in A (as mine), and does not come back to A.
  const hello = "hello from tab A — ça va? ✓";
  await a.fill("#message", hello);
  await a.press("#message", "Enter");
  await until(b, "tab A's message reaches tab B's log",
    (t) => [...document.querySelectorAll("#log li.theirs .text")].some((e) => e.textContent === t), hello);
  check(true, "a message typed in tab A appears in tab B's log");
  check(JSON.stringify(await logTexts(a, "mine")) === JSON.stringify([hello]) && (await a.inputValue("#message")) === "",
    "tab A shows its own message as mine and clears the input");
  const reply = "hi A, B here";
  await b.fill("#message", reply);
  await b.click("#submit");
  await until(a, "tab B's reply reaches tab A",
    (t) => [...document.querySelectorAll("#log li.theirs .text")].some((e) => e.textContent === t), reply);
  check(JSON.stringify(await logTexts(a, "theirs")) === JSON.stringify([reply]),
    "tab B's reply appears in tab A, and tab A never got its own message back");

  const short = relay.textFrames("browser");
  check(short.length === 1 && !short[0].rsv1 && short[0].length === Buffer.byteLength(hello),
    `on the wire, tab A's short message reached tab B uncompressed (${short[0]?.length} B, under the 256 B threshold)`);

  mkdirSync(dirname(screenshot), { recursive: true });
  await a.screenshot({ path: screenshot });
  check(existsSync(screenshot), `screenshot of the joined chat at ${screenshot.replace(ROOT + "/", "")}`);

  // A long message each way (pasted into the input): intact in the other tab, compressed on the wire.
  const longA = `A: ${longText(4000)}`;
  await a.fill("#message", longA);
  await a.press("#message", "Enter");
  await until(b, "tab A's long message reaches tab B",
    (t) => [...document.querySelectorAll("#log li.theirs .text")].some((e) => e.textContent === t), longA);
  check((await logTexts(b, "theirs")).at(-1) === longA,
    `a ${Buffer.byteLength(longA)} B message typed in tab A appears intact in tab B's log`);
  const down = relay.textFrames("browser").at(-1);
  check(relay.textFrames("browser").length === 2 && down.rsv1 && down.length < Buffer.byteLength(longA) / 2,
    `on the wire it reached tab B compressed: RSV1 set, ${down.length} B for ${Buffer.byteLength(longA)} B of text`);
  const longB = `B: ${longText(3000)}`;
  await b.fill("#message", longB);
  await b.press("#message", "Enter");
  await until(a, "tab B's long message reaches tab A",
    (t) => [...document.querySelectorAll("#log li.theirs .text")].some((e) => e.textContent === t), longB);
  check((await logTexts(a, "theirs")).at(-1) === longB,
    `a ${Buffer.byteLength(longB)} B message typed in tab B appears intact in tab A's log`);
  const up = relay.textFrames("server").at(-1);
  check(up && up.rsv1 && up.length < Buffer.byteLength(longB) / 2,
    `on the wire tab B's browser sent it compressed and the server inflated it: RSV1 set, ${up?.length} B for ${Buffer.byteLength(longB)} B`);

  // A wrong password: the handshake is refused (403) and the page says so.
  const c = await newTab("C");
  await enter(c, base, "guess");
  await statusIs(c, "refused", "tab C (wrong password) is refused");
  check(await c.locator("#status").textContent() === "Refused: wrong password.",
    "a wrong password shows \"Refused: wrong password.\" on the page");
  const sc = await lastSocket(c);
  check(!sc.events.some((e) => e.type === "open") && sc.readyState === 3
    && sc.events.some((e) => e.type === "close" && e.code === 1006 && !e.wasClean),
    "the refused WebSocket never opened and reports closed (readyState 3, 1006)");
  check(await c.locator("#message").isDisabled() && (await c.locator("#connect").textContent()) === "Join",
    "after the refusal the composer stays disabled and the button reads Join");

  // Leave: a clean close with 1000, seen by the page and by the server.
  const d = await newTab("D");
  await enter(d, base, PASSWORD);
  await statusIs(d, "open", "tab D joins");
  await d.click("#connect");
  await statusIs(d, "closed", "tab D leaves");
  const sd = await lastSocket(d);
  check(sd.readyState === 3 && sd.events.some((e) => e.type === "close" && e.code === 1000 && e.wasClean)
    && (await d.locator("#status").textContent()).startsWith("Disconnected (code 1000"),
    "Leave closes with 1000: the socket reports closed and the page shows code 1000");
  await server.waitFor(/closed connection with code 1000/);
  check(true, "the server logged the close with code 1000");

  // SIGTERM: every open tab shows the disconnect with 1001 and the server exits by itself.
  server.terminate();
  for (const [name, page] of [["A", a], ["B", b]]) {
    await statusIs(page, "closed", `tab ${name} sees the server go away`);
    const text = await page.locator("#status").textContent();
    const s = await lastSocket(page);
    const close = s.events.find((e) => e.type === "close");
    check(text.startsWith("Disconnected (code 1001") && s.readyState === 3 && close && close.code === 1001 && close.wasClean
      && await page.locator("#message").isDisabled(),
      `on SIGTERM tab ${name} shows ${JSON.stringify(text)} and its socket reports closed with 1001`);
  }
  const code = await server.waitExit();
  check(code === 0, "the server exited by itself with status 0");
  check(pageErrors.length === 0, `no uncaught script errors in the page${pageErrors.length ? ": " + pageErrors.join("; ") : ""}`);
});

async function pageLoads(page, base) {
  const response = await page.goto(`${base}/`, { timeout: WAIT_MS });
  check(response.status() === 200 && (await page.title()).includes("secure chat"), "GET / serves the chat page to the browser");
  check(await page.locator("#status").textContent() === "Not connected."
    && (await page.locator("#status").getAttribute("data-state")) === "idle"
    && await page.locator("#message").isDisabled(),
    "before joining the page shows Not connected. and the composer is disabled");
}
