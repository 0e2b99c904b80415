// Real-browser end-to-end test of examples/rooms: two `rooms --redis` nodes on one Redis,
// headless Debian Chromium driven by playwright-core (no bundled browser).
//
// Usage: node tests/e2e/browser/rooms.mjs target/release/examples/rooms [--screenshot PATH]
// (built with `--features json,redis`; `redis-server` on the PATH)
//
// Starts its own redis-server on a free port and two nodes on it, then, as users would, in
// separate browser contexts: ada (tab A) on node 1 and bob (tab B) on node 2 load the page from
// their node, sign in and join the room "lobby"; cat (tab C) on node 1 joins too, and tab A's
// member list shows all three, bob from the other node (presence across nodes). Messages
// typed in one tab show in the other with the same offsets. Then, twice,
// the test closes tab A's WebSocket from the page (`window.__ws.close()`, the socket the page
// keeps) while tab B keeps sending: first with tab A's context offline (the page waits for the
// network, so the messages sent meanwhile are certainly missed, and tab B goes on sending while
// tab A comes back), then with the network up (the page reconnects after its backoff while tab B
// sends). Each time tab A shows the reconnecting state, reconnects, and ends up showing exactly
// the messages tab B shows: every missed one once, in order, the replayed ones marked recovered.
// No console errors in any tab; a screenshot of tab A after the first recovery. Every wait is
// on a page or log condition with a timeout, never a fixed sleep. Ends with `N passed, 0 failed`;
// exits 1 on failure.

import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Proc, ROOT, WAIT_MS, check, commandLine, freePort, run } from "./harness.mjs";

const TOTAL_MS = 120_000; // the whole run, browser start included
const OFFLINE_MISSED = 8; // messages tab B sends while tab A is offline
const WHILE_BACK = 4; // messages tab B sends as tab A comes back
const WHILE_BACKOFF = 10; // messages tab B sends while tab A waits for its backoff

const { binary, screenshot } = commandLine("rooms", "browser-rooms.png");

// ---- the pages -------------------------------------------------------------------------------

/** Waits until `fn(arg)` is truthy in the page; the error names `what`. */
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const status = await page.locator("#status").textContent().catch(() => "?");
    throw new Error(`${what}: not within ${WAIT_MS} ms (status: ${JSON.stringify(status)}; ${err.message.split("\n")[0]})`);
  }
}

const stateIs = (page, state, what) =>
  until(page, what, (s) => document.getElementById("status").dataset.state === s, state);

/** The messages the page shows in the current room: [{ offset, epoch, user, text, recovered }]. */
const shown = (page) => page.$$eval("#messages li.message", (els) => els.map((li) => ({
  offset: Number(li.dataset.offset),
  epoch: li.dataset.epoch,
  user: li.querySelector(".user").textContent,
  text: li.querySelector(".text").textContent,
  recovered: li.classList.contains("recovered"),
})));

const texts = (page) => page.$$eval("#messages li.message .text", (els) => els.map((e) => e.textContent));
const notes = (page) => page.$$eval("#messages li.system", (els) => els.map((e) => e.textContent));
const members = (page) => page.$$eval("#members li .who", (els) => els.map((e) => e.textContent));

/** Loads the page from `base`, signs in as `user` and joins `room`. */
async function enter(page, base, user, room) {
  const response = await page.goto(`${base}/`, { timeout: WAIT_MS });
  if (response.status() !== 200) throw new Error(`GET ${base}/ answered ${response.status()}`);
  await page.fill("#user", user);
  await page.press("#user", "Enter");
  await stateIs(page, "open", `${user} connects`);
  await joinRoom(page, room);
}

/** Joins `room` with the sidebar's form; the page then shows that room. */
async function joinRoom(page, room) {
  await page.fill("#room", room);
  await page.click("#join-button");
  await until(page, `joining ${room}`,
    (r) => document.querySelector(`#rooms li[data-room="${r}"]`)?.classList.contains("pending") === false, room);
}

/** Types `text` in the page and waits for it to come back from the server as a message. */
async function say(page, text) {
  await page.fill("#message", text);
  await page.press("#message", "Enter");
  await until(page, `${JSON.stringify(text)} comes back`,
    (t) => [...document.querySelectorAll("#messages li.message .text")].some((e) => e.textContent === t), text);
}

/** Waits until tab `a` shows exactly the messages `expected` (texts), in order. */
const showsExactly = (page, expected, what) =>
  until(page, what, (want) => {
    const got = [...document.querySelectorAll("#messages li.message .text")].map((e) => e.textContent);
    return got.length === want.length && got.every((t, i) => t === want[i]);
  }, expected);

// ---- the test --------------------------------------------------------------------------------

const procs = [];
const pageErrors = [];
let browser = null;

await run({ totalMs: TOTAL_MS, procs, pageErrors, cleanup: () => browser?.close() }, async () => {
  const redisPort = await freePort();
  const redis = new Proc("redis-server", "redis-server",
    ["--bind", "127.0.0.1", "--port", String(redisPort), "--save", "", "--appendonly", "no"]);
  procs.push(redis);
  await redis.waitFor(/Ready to accept connections/);
  const url = `redis://127.0.0.1:${redisPort}/`;
  const nodes = [1, 2].map((n) => new Proc(`node ${n}`, binary, ["--addr", "127.0.0.1:0", "--redis", url]));
  procs.push(...nodes);
  const bases = [];
  for (const node of nodes) {
    bases.push(`http://${(await node.waitFor(/Rooms at http:\/\/([0-9.]+:[0-9]+)\//))[1]}`);
    await node.waitFor(/Redis backplane up/);
  }
  check(true, `redis-server and two rooms nodes on it (${bases.join(", ")}), both linked`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const tab = async (name) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 820 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
    page.on("console", (msg) => { if (msg.type() === "error") pageErrors.push(`${name} console: ${msg.text()}`); });
    return { context, page };
  };
  const { context: ctxA, page: a } = await tab("A");
  const { page: b } = await tab("B");
  const { page: c } = await tab("C");

  await enter(a, bases[0], "ada", "lobby");
  check((await a.title()).includes("rooms") && await a.locator("#status").textContent() === "Connected",
    "tab A (ada, node 1) loads the page from its node, connects and joins lobby");
  await enter(b, bases[1], "bob", "lobby");
  check(true, "tab B (bob, node 2) connects to the other node and joins lobby");
  await until(a, "tab A hears that bob joined (across nodes)",
    () => [...document.querySelectorAll("#messages li.system")].some((e) => e.textContent === "bob joined."));
  check(true, "tab A shows \"bob joined.\": the join event crossed from node 2");
  await enter(c, bases[0], "cat", "lobby");
  await until(a, "tab A's member list shows cat",
    () => [...document.querySelectorAll("#members li .who")].map((e) => e.textContent).join() === "ada,bob,cat");
  check(true, "cat (tab C) joins on node 1: tab A's member list refreshes to ada, bob (node 2), cat");
  await joinRoom(a, "random");
  await joinRoom(c, "random");
  await a.click('#rooms li[data-room="lobby"] .name');
  check(await a.locator("#room-title").textContent() === "lobby"
    && (await a.$$eval("#rooms li", (els) => els.map((e) => e.dataset.room))).join() === "lobby,random",
    "tab A is in two rooms, lobby and random (cat's tab too), and shows lobby again");

  await say(b, "hello from bob on node 2");
  await say(a, "hi bob, ada here on node 1");
  await showsExactly(b, ["hello from bob on node 2", "hi bob, ada here on node 1"], "tab B shows both messages");
  await showsExactly(a, ["hello from bob on node 2", "hi bob, ada here on node 1"], "tab A shows both messages");
  const [sa, sb] = [await shown(a), await shown(b)];
  check(JSON.stringify(sa) === JSON.stringify(sb) && sa.map((m) => m.offset).join() === "1,2",
    "both tabs show the two messages with the same positions, offsets 1 and 2");
  check(await a.locator("li.message.mine .text").textContent() === "hi bob, ada here on node 1",
    "tab A shows its own message as mine, once it came back with its position");

  // ---- round 1: the network drops; tab B sends while tab A is offline, and on as it returns.
  await ctxA.setOffline(true);
  await a.evaluate(() => window.__ws.close());
  await stateIs(a, "offline", "tab A notices it is offline");
  check(await a.locator("#banner").isVisible() && (await a.locator("#status").textContent()) === "Offline"
    && await a.locator("#message").isDisabled(),
    "with its socket closed and the network down, tab A shows Offline and its banner, composer disabled");
  for (let i = 1; i <= OFFLINE_MISSED; i++) await say(b, `missed ${i} (tab A offline)`);
  await say(c, "did you see this, ada?");
  check(true, `tab B sent ${OFFLINE_MISSED} messages to lobby while tab A was offline, and cat one to random`);
  await ctxA.setOffline(false);
  for (let i = 1; i <= WHILE_BACK; i++) await say(b, `live ${i} (tab A coming back)`);
  await stateIs(a, "open", "tab A reconnects once the network is back");
  let expected = await texts(b);
  await showsExactly(a, expected, "tab A shows every message tab B shows, once, in order");
  let [ma, mb] = [await shown(a), await shown(b)];
  check(JSON.stringify(ma.map(({ recovered, ...m }) => m)) === JSON.stringify(mb.map(({ recovered, ...m }) => m)),
    `after the drop tab A shows exactly tab B's ${mb.length} messages, same offsets, once each and in order`);
  check(ma.every((m, i) => m.offset === i + 1), `offsets 1..${ma.length} without gap or repeat`);
  const recovered = ma.filter((m) => m.recovered);
  check(recovered.length >= OFFLINE_MISSED && recovered[0].offset === 3
    && recovered.every((m, i) => m.offset === 3 + i),
    `the ${recovered.length} messages from offset 3 on that came in the replay are marked recovered (at least the ${OFFLINE_MISSED} sent offline)`);
  const said = await notes(a);
  check(said.includes(`${recovered.length} missed messages recovered.`) && said.some((n) => n.startsWith("Connection lost")),
    `tab A says "Connection lost" and "${recovered.length} missed messages recovered."`);
  check(!(await a.locator("#banner").isVisible()) && await a.locator("#message").isEnabled(),
    "the banner is gone and the composer is enabled again");
  await until(a, "tab A counts 1 unread message in random",
    () => document.querySelector('#rooms li[data-room="random"] .unread')?.textContent === "1"
      && !document.querySelector('#rooms li[data-room="random"]').classList.contains("pending"));
  check(true, "tab A re-joined random too, and counts cat's missed message there as unread");

  mkdirSync(dirname(screenshot), { recursive: true });
  await a.screenshot({ path: screenshot });
  check(existsSync(screenshot), `screenshot of tab A after the recovery at ${screenshot.replace(ROOT + "/", "")}`);

  // ---- round 2: the socket closes with the network up; tab B sends during the backoff.
  await a.evaluate(() => window.__ws.close());
  await stateIs(a, "reconnecting", "tab A shows that it is reconnecting");
  check(/^Connection lost\. Reconnecting in [0-9.]+ s/.test(await a.locator("#banner").textContent()),
    "tab A shows Reconnecting… and its banner while it waits for its backoff");
  for (let i = 1; i <= WHILE_BACKOFF; i++) await say(b, `during backoff ${i}`);
  await stateIs(a, "open", "tab A reconnects by itself");
  expected = await texts(b);
  await showsExactly(a, expected, "tab A shows every message tab B shows, once, in order, after the second drop");
  [ma, mb] = [await shown(a), await shown(b)];
  check(JSON.stringify(ma.map(({ recovered, ...m }) => m)) === JSON.stringify(mb.map(({ recovered, ...m }) => m))
    && ma.every((m, i) => m.offset === i + 1),
    `after the second drop tab A again shows exactly tab B's ${mb.length} messages, offsets 1..${mb.length}`);
  await say(a, "back for good");
  await showsExactly(b, [...expected, "back for good"], "tab A's next message reaches tab B");
  check(true, "tab A's next message reaches tab B: the recovered connection works both ways");
  await a.click('#rooms li[data-room="random"] .name');
  const inRandom = await shown(a);
  check(inRandom.length === 1 && inRandom[0].text === "did you see this, ada?" && inRandom[0].user === "cat"
    && inRandom[0].recovered && inRandom[0].offset === 1
    && await a.locator('#rooms li[data-room="random"] .unread').count() === 0,
    "in random, tab A shows cat's message once, recovered at offset 1, and the unread count is gone");
  check(pageErrors.length === 0, `no console errors or uncaught exceptions in any tab${pageErrors.length ? ": " + pageErrors.join("; ") : ""}`);
});
