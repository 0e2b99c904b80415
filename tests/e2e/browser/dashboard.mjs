// Real-browser end-to-end test of the operators' live page (`ws::Dashboard`), served by
// `secure_chat --dashboard`, in headless Debian Chromium driven by playwright-core.
//
// Usage: node tests/e2e/browser/dashboard.mjs target/release/examples/secure_chat [--screenshot PATH]
//
// Opens the dashboard: it renders (title, tiles, a canvas per chart), goes Live and shows 0
// connections. Then load runs from another tab on the chat's own origin: 3 members connect and
// send 60 messages each over about 3 seconds (each relayed to the 2 others), a wrong password
// and a cross-origin handshake are refused, and the members close with 4000. The dashboard
// must follow: 3 connections, message rates above zero in and out, the message chart's pixels
// changed, refusals by reason `rejected` and `origin`, closes by code `application`, back to 0
// connections; no console error on the dashboard page; a screenshot at the end. Every wait is
// on a page condition with a timeout. Ends with `N passed, 0 failed`; exits 1 on failure.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Proc, WAIT_MS, check, commandLine, run } from "./harness.mjs";

const TOTAL_MS = 90_000; // the whole run, browser start included
const PASSWORD = "reallyverysecure";
const { binary, screenshot } = commandLine("dashboard", "browser-dashboard.png");

/** Waits until `fn(arg)` is truthy in the page; the error names `what`. */
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (err) {
    throw new Error(`${what}: not within ${WAIT_MS} ms (${err.message.split("\n")[0]})`);
  }
}

/** The dashboard's data for its socket: the last sample and the series it draws. */
const lastSample = (page) => page.evaluate(() => {
  const s = window.__dashboard.sockets[0];
  return s.samples[s.samples.length - 1];
});

const procs = [];
const pageErrors = [];
let browser = null;

await run({ totalMs: TOTAL_MS, procs, pageErrors, cleanup: () => browser?.close() }, async () => {
  const chat = new Proc("secure_chat", binary, ["--addr", "127.0.0.1:0", "--dashboard", "127.0.0.1:0"]);
  procs.push(chat);
  const chatBase = `http://${(await chat.waitFor(/Chat at http:\/\/([0-9.]+:[0-9]+)\//))[1]}`;
  const dashBase = `http://${(await chat.waitFor(/Dashboard at http:\/\/([0-9.]+:[0-9]+)\//))[1]}`;
  check(true, `secure_chat with its dashboard on an address of its own (${dashBase})`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1100 } });
  context.setDefaultTimeout(WAIT_MS);
  const dash = await context.newPage();
  dash.on("pageerror", (err) => pageErrors.push(err.message));
  dash.on("console", (msg) => { if (msg.type() === "error") pageErrors.push(`console: ${msg.text()}`); });
  const response = await dash.goto(`${dashBase}/`);
  check(response.status() === 200 && (await dash.title()) === "ws dashboard", "GET / serves the dashboard page");
  await until(dash, "the page goes Live", () => document.getElementById("status").textContent === "Live");
  const canvases = await dash.$$eval("canvas", (cs) => cs.filter((c) => c.width > 0 && c.height > 0).length);
  check(canvases >= 6, `it is Live, with ${canvases} charts drawn`);
  await until(dash, "two samples", () => window.__dashboard.sockets[0].samples.length >= 2);
  check((await dash.locator("#t-conn").textContent()) === "0", "the Connections tile shows 0");
  const quiet = await dash.$eval("#c-msg", (c) => c.toDataURL());

  // ---- load, from a tab on the chat's own origin ---------------------------------------
  const load = await context.newPage();
  await load.goto(`${chatBase}/`);
  const opened = await load.evaluate(async ({ password }) => {
    const url = `ws://${location.host}/ws?password=${password}`;
    const open = (u) => new Promise((ok, fail) => {
      const ws = new WebSocket(u);
      ws.onopen = () => ok(ws);
      ws.onerror = () => fail(new Error(`${u} refused`));
    });
    window.__members = [await open(url), await open(url), await open(url)];
    const refused = await open(`ws://${location.host}/ws?password=guess`).then(() => false, () => true);
    return refused && window.__members.length === 3;
  }, { password: PASSWORD });
  check(opened, "3 members connect from the chat's page, and a wrong password is refused");
  // A handshake from another origin: the blank page's Origin is "null", not the chat's.
  const stranger = await context.newPage();
  const crossRefused = await stranger.evaluate(async (host) => new Promise((ok) => {
    const ws = new WebSocket(`ws://${host}/ws?password=reallyverysecure`);
    ws.onopen = () => ok(false);
    ws.onerror = () => ok(true);
  }), new URL(chatBase).host);
  check(crossRefused, "a handshake from another origin is refused");
  await until(dash, "3 connections on the tile", () => document.getElementById("t-conn").textContent === "3");
  check(true, "the Connections tile shows 3");

  // 60 messages from each member over about 3 s: each goes to the 2 others.
  await load.evaluate(async () => {
    for (let i = 0; i < 60; i++) {
      for (const ws of window.__members) ws.send(`load ${i}`);
      await new Promise((ok) => setTimeout(ok, 50));
    }
  });
  await until(dash, "all 180 messages counted", () => {
    const s = window.__dashboard.sockets[0];
    const last = s.samples[s.samples.length - 1];
    return last.messages_received === 180 && last.messages_sent === 360;
  });
  check(true, "the samples count every message: 180 received, 360 sent (each to the 2 others)");
  const rates = await dash.evaluate(() => [document.getElementById("t-min").textContent, document.getElementById("t-mout").textContent]);
  const moving = await dash.$eval("#c-msg", (c, before) => c.toDataURL() !== before, quiet);
  check(moving && rates.every((r) => r !== "–" && Number.parseFloat(r) > 0),
    `the message chart moved while the load ran (tiles: ${rates[0]} in, ${rates[1]} out per s)`);
  const refusals = await dash.$$eval("#l-ref span", (els) => els.map((e) => e.textContent).sort());
  check(JSON.stringify(refusals) === JSON.stringify(["origin", "rejected"]),
    `the refusals chart shows its reasons: ${refusals.join(", ")}`);
  const refusedTile = await dash.locator("#t-ref").textContent();
  check(refusedTile === "2", `the Refused tile counts 2 in the last minute (${refusedTile})`);

  await load.evaluate(() => { for (const ws of window.__members) ws.close(4000, "bye"); });
  await until(dash, "the closes show", () => {
    const s = window.__dashboard.sockets[0];
    const last = s.samples[s.samples.length - 1];
    return last.connections === 0 && (last.closed.application || 0) === 3;
  });
  await until(dash, "the closes chart's legend", () =>
    [...document.querySelectorAll("#l-closed span")].some((e) => e.textContent === "application"));
  check((await dash.locator("#t-conn").textContent()) === "0",
    "the members close with 4000: 3 closes by code `application`, 0 connections again");

  mkdirSync(dirname(screenshot), { recursive: true });
  await dash.screenshot({ path: screenshot, fullPage: true });
  check(true, `screenshot of the dashboard at ${screenshot}`);
  const last = await lastSample(dash);
  check(last.opened === 3 && last.refused.rejected === 1 && last.refused.origin === 1,
    "its last sample: 3 opened, 1 refused by password, 1 by origin");
  check(pageErrors.length === 0, `no console errors or uncaught exceptions on the dashboard${pageErrors.length ? ": " + pageErrors.join("; ") : ""}`);
});
