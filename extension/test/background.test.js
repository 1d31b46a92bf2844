/* The service worker loaded as in the browser (importScripts in a vm context) over a fake chrome.*. */
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { EXT, fakeChrome } = require("./helpers.js");

const SRC = path.join(EXT, "src");

/** A fresh worker: returns {chrome, requests, ctx, setServer(fn)}. */
function bootWorker({ respond } = {}) {
  return bootWorkerWith(fakeChrome(), { respond });
}

function bootWorkerWith(chrome, { respond } = {}) {
  const requests = [];
  let handler = respond || ((req) => (req.path === "/v1/users" ? { status: 201, body: { user_id: "u1", token: "tok" } } : { status: 202, body: { accepted: 1, duplicates: 0 } }));
  const fetch = async (url, init) => {
    const u = new URL(url);
    const req = { method: init.method, path: u.pathname, query: u.search, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    requests.push(req);
    const res = await handler(req);
    if (res === "network") throw new TypeError("Failed to fetch");
    return {
      status: res.status, ok: res.status >= 200 && res.status < 300,
      headers: { get: (h) => (res.headers || {})[h] ?? null },
      json: async () => res.body,
    };
  };
  const ctx = vm.createContext({
    chrome, fetch, console, URL, URLSearchParams, setTimeout, clearTimeout, AbortController, structuredClone,
    crypto: globalThis.crypto, navigator: {},
  });
  ctx.globalThis = ctx;
  ctx.self = ctx;
  ctx.importScripts = (...files) => {
    for (const f of files) vm.runInContext(fs.readFileSync(path.join(SRC, f), "utf8"), ctx, { filename: f });
  };
  vm.runInContext(fs.readFileSync(path.join(SRC, "background.js"), "utf8"), ctx, { filename: "background.js" });
  return { chrome, requests, ctx, setHandler: (h) => { handler = h; } };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms = 2000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await fn()) return true; await tick(10); }
  throw new Error("condition not met");
}
function message(chrome, msg, sender) {
  return new Promise((resolve) => {
    // messages are serialised between contexts in the browser; do the same across vm realms
    const keep = chrome.listeners.message[0](msg, sender, (r) => resolve(r === undefined ? r : JSON.parse(JSON.stringify(r))));
    if (!keep) setTimeout(() => resolve(undefined), 0);
  });
}
const PAGE = { id: "testextensionid", url: "chrome-extension://testextensionid/pages/popup.html" };
const CONTENT = { id: "testextensionid", url: "https://arxiv.org/list/cs/new", tab: { id: 3 } };
const consented = (chrome) => chrome.storage.local.set({ consent: { given: true }, auth: { server: "http://127.0.0.1:8000", userId: "u1", token: "tok" } });
function event(n) {
  return { id: `11111111-1111-4111-8111-${String(n).padStart(12, "0")}`, type: "click", paper: { id: "arxiv:2401.12345", title: "T" }, ts: 1700000000, site: "arxiv.org" };
}

test("listeners are registered at top level; the periodic alarm is created only if missing", async () => {
  const { chrome } = bootWorker();
  assert.equal(chrome.listeners.message.length, 1);
  assert.equal(chrome.listeners.changed.length, 1);
  assert.equal(chrome.listeners.alarm.length, 1);
  assert.equal(chrome.listeners.installed.length, 1);
  assert.equal(chrome.listeners.startup.length, 1);
  await tick();
  assert.equal(chrome.alarms.get("pf-flush") !== undefined, true);
  const first = await chrome.alarms.get("pf-flush");
  assert.equal(first.periodInMinutes, 1);
  first.marker = "original";
  await chrome.listeners.startup[0]();
  await tick();
  assert.equal((await chrome.alarms.get("pf-flush")).marker, "original", "not re-created");
});

test("a queued event plus its nudge makes exactly one POST, with the bearer token", async () => {
  const { chrome, requests } = bootWorker();
  await consented(chrome);
  await chrome.storage.local.set({ "q:0000000001000:a": event(1) }); // storage.onChanged triggers a pass
  const reply = await message(chrome, { type: "nudge" }, CONTENT);
  assert.deepEqual(reply, { ok: true });
  await until(async () => Object.keys(await chrome.storage.local.get(null)).every((k) => !k.startsWith("q:")));
  await tick(50);
  const posts = requests.filter((r) => r.path === "/v1/events");
  assert.equal(posts.length, 1);
  assert.deepEqual(posts[0].body, { events: [event(1)] });
  assert.equal(posts[0].headers.Authorization, "Bearer tok");
});

test("nothing is sent before registration", async () => {
  const { chrome, requests } = bootWorker();
  await chrome.storage.local.set({ "q:0000000001000:a": event(1) });
  await tick(50);
  assert.equal(requests.length, 0);
});

test("server down: events stay, a retry alarm is set; the retry alarm delivers them once", async () => {
  const boot = bootWorker();
  const { chrome, requests } = boot;
  await consented(chrome);
  boot.setHandler(() => "network");
  await chrome.storage.local.set({ "q:0000000001000:a": event(1), "q:0000000001001:b": event(2) });
  await until(async () => (await chrome.alarms.get("pf-retry")) !== undefined);
  assert.equal(Object.keys(await chrome.storage.local.get(null)).filter((k) => k.startsWith("q:")).length, 2);
  boot.setHandler(() => ({ status: 202, body: { accepted: 2, duplicates: 0 } }));
  chrome.listeners.alarm[0]({ name: "pf-retry" });
  await until(async () => Object.keys(await chrome.storage.local.get(null)).every((k) => !k.startsWith("q:")));
  const posts = requests.filter((r) => r.path === "/v1/events" && r.body);
  assert.deepEqual(posts.at(-1).body.events.map((e) => e.id), [event(1).id, event(2).id]);
  assert.equal((await chrome.storage.local.get("stats")).stats.sent, 2);
});

test("privileged messages are refused from content scripts; unknown types refused", async () => {
  const { chrome, requests } = bootWorker();
  await consented(chrome);
  for (const type of ["recommendations", "deleteData", "exportData", "register", "status", "dismiss", "flushNow"]) {
    assert.deepEqual(await message(chrome, { type }, CONTENT), { ok: false, error: "forbidden" }, type);
  }
  assert.deepEqual(await message(chrome, { type: "toString" }, PAGE), { ok: false, error: "forbidden" });
  assert.deepEqual(await message(chrome, { type: "nudge" }, { ...CONTENT, id: "another-extension" }), { ok: false, error: "forbidden" });
  assert.equal(requests.filter((r) => r.path !== "/v1/events").length, 0);
});

test("register stores consent and token; recommendations go through the worker", async () => {
  const boot = bootWorker();
  const { chrome, requests } = boot;
  const reply = await message(chrome, { type: "register", server: "http://127.0.0.1:8000/" }, PAGE);
  assert.deepEqual(reply, { ok: true, data: { userId: "u1" } });
  const { auth, consent } = await chrome.storage.local.get(["auth", "consent"]);
  assert.deepEqual(auth, { server: "http://127.0.0.1:8000", userId: "u1", token: "tok" });
  assert.equal(consent.given, true);
  boot.setHandler(() => ({ status: 200, body: { items: [], personalised: false } }));
  assert.deepEqual(await message(chrome, { type: "recommendations", limit: 5 }, PAGE), { ok: true, data: { items: [], personalised: false } });
  assert.equal(requests.at(-1).query, "?limit=5");
  boot.setHandler(() => "network");
  assert.equal((await message(chrome, { type: "recommendations" }, PAGE)).error, "unreachable");
});

test("dismiss queues a dismiss event with a canonical id and sends it", async () => {
  const { chrome, requests } = bootWorker();
  await consented(chrome);
  const reply = await message(chrome, { type: "dismiss", paper: { id: "arxiv:2401.12345v2", title: "<b>x</b>" } }, PAGE);
  assert.deepEqual(reply, { ok: true });
  await until(() => requests.some((r) => r.path === "/v1/events"));
  const ev = requests.find((r) => r.path === "/v1/events").body.events[0];
  assert.equal(ev.type, "dismiss");
  assert.deepEqual(ev.paper, { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345", title: "<b>x</b>" });
  assert.match(ev.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(Number.isInteger(ev.ts), true);
});

test("delete my data: DELETE /v1/me, then local state is cleared but settings kept", async () => {
  const boot = bootWorker({ respond: (req) => (req.method === "DELETE" ? { status: 204 } : "network") });
  const { chrome, requests } = boot;
  await consented(chrome);
  await chrome.storage.local.set({ settings: { server: "http://127.0.0.1:8000", paused: true }, stats: { sent: 3 }, "q:0000000000001:x": event(1) });
  assert.deepEqual(await message(chrome, { type: "deleteData" }, PAGE), { ok: true });
  assert.ok(requests.some((r) => r.method === "DELETE" && r.path === "/v1/me" && r.headers.Authorization === "Bearer tok"));
  assert.deepEqual(Object.keys(await chrome.storage.local.get(null)), ["settings"]);
});

test("delete my data with the server unreachable keeps everything and says so", async () => {
  const { chrome } = bootWorker({ respond: () => "network" });
  await consented(chrome);
  const reply = await message(chrome, { type: "deleteData" }, PAGE);
  assert.equal(reply.ok, false);
  assert.equal(reply.error, "unreachable");
  assert.ok((await chrome.storage.local.get("auth")).auth);
});

/** Storage as a last session left it: consent, two events queued while the server was down, `backoff`. */
async function lastSession(backoff) {
  const chrome = fakeChrome();
  await consented(chrome);
  await chrome.storage.local.set({ "q:0000000001000:a": event(1), "q:0000000001001:b": event(2), backoff });
  return chrome;
}
const queueEmpty = async (chrome) => Object.keys(await chrome.storage.local.get(null)).every((k) => !k.startsWith("q:"));
const eventPosts = (boot) => boot.requests.filter((r) => r.path === "/v1/events");

test("a browser restart delivers the queue at once, whatever backoff the last session left", async () => {
  const chrome = await lastSession({ attempt: 4, nextAt: Date.now() + 60000 }); // next try a minute away
  const boot = bootWorkerWith(chrome);
  await tick(50);
  assert.equal(eventPosts(boot).length, 0, "a worker waking up within the session keeps to the backoff");
  await chrome.listeners.startup[0]();
  await until(() => queueEmpty(chrome));
  assert.deepEqual(eventPosts(boot).map((r) => r.body.events.map((e) => e.id)), [[event(1).id, event(2).id]]);
});

test("a worker starting with a pending backoff and no retry alarm re-creates it", async () => {
  const chrome = fakeChrome();
  await chrome.storage.local.set({ backoff: { attempt: 2, nextAt: Date.now() + 60000 } });
  // boot a worker over this storage
  const boot = bootWorkerWith(chrome);
  await until(async () => (await boot.chrome.alarms.get("pf-retry")) !== undefined);
  assert.ok((await chrome.alarms.get("pf-retry")).when >= Date.now() + 50000);
});

test("a worker starting with a pending backoff sets the retry alarm again, even over one it has", async () => {
  const chrome = fakeChrome();
  const nextAt = Date.now() + 60000;
  await chrome.storage.local.set({ backoff: { attempt: 2, nextAt } });
  // carried over from the last browser session, at a time the backoff no longer says
  await chrome.alarms.create("pf-retry", { when: nextAt + 3600000, marker: "stale" });
  bootWorkerWith(chrome);
  await until(async () => (await chrome.alarms.get("pf-retry")).marker === undefined);
  assert.equal((await chrome.alarms.get("pf-retry")).when, nextAt);
});

test("a worker starting with a queue and no backoff pending delivers it without an alarm", async () => {
  const chrome = await lastSession({ attempt: 3, nextAt: Date.now() - 1000 }); // ran out while the browser was closed
  const boot = bootWorkerWith(chrome);
  await until(() => queueEmpty(chrome));
  assert.deepEqual(eventPosts(boot).map((r) => r.body.events.map((e) => e.id)), [[event(1).id, event(2).id]]);
  assert.deepEqual((await chrome.storage.local.get("backoff")).backoff, { attempt: 0, nextAt: 0 });
});
