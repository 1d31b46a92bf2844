/* Delivery queue: pure decisions, then whole flush passes over the real storage wrapper. */
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { fakeChrome } = require("./helpers.js");

const Q = require("../src/queue.js");
const Store = require("../src/storage.js");

function setup({ cap } = {}) {
  globalThis.chrome = fakeChrome();
  if (cap) globalThis.chrome.storage.local.set({ settings: { ...Store.DEFAULT_SETTINGS, queueCap: cap } });
  return globalThis.chrome;
}

let seq = 0;
function ev(n) {
  seq += 1;
  return { id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`, type: "click", paper: { id: `arxiv:2401.${String(10000 + n)}` }, ts: 1700000000 + n, site: "arxiv.org" };
}
async function fill(n, t0 = 1000) {
  const events = [];
  for (let i = 0; i < n; i++) {
    const e = ev(i);
    events.push(e);
    await Store.enqueue(e, t0 + i);
  }
  return events;
}
/** A fake POST /v1/events: answers from a script of statuses, records what it got. */
function fakePost(script) {
  const calls = [];
  const post = async (events) => {
    calls.push(events.map((e) => e.id));
    const next = typeof script === "function" ? script(events, calls.length) : script.shift() || { status: 202 };
    return { retryAfter: null, ...next };
  };
  return { post, calls };
}

test("classify: 2xx sent; network, 408, 429, 5xx and 401 retried; 400/413/422 split; other 4xx dropped", () => {
  assert.equal(Q.classify(202), "sent");
  assert.equal(Q.classify(200), "sent");
  for (const s of [0, 408, 429, 500, 502, 503, 504, 401]) assert.equal(Q.classify(s), "retry", String(s));
  for (const s of [400, 413, 422]) assert.equal(Q.classify(s), "split", String(s));
  for (const s of [403, 404, 405, 409, 410, 415]) assert.equal(Q.classify(s), "drop", String(s));
});

test("parseRetryAfter: seconds, HTTP-date, junk", () => {
  const now = Date.parse("Sat, 28 Nov 2026 09:00:00 GMT");
  assert.equal(Q.parseRetryAfter("120", now), 120000);
  assert.equal(Q.parseRetryAfter(" 0 ", now), 0);
  assert.equal(Q.parseRetryAfter("Sat, 28 Nov 2026 09:00:30 GMT", now), 30000);
  assert.equal(Q.parseRetryAfter("Sat, 28 Nov 2026 08:00:00 GMT", now), 0, "a date in the past means now");
  assert.equal(Q.parseRetryAfter(null, now), null);
  assert.equal(Q.parseRetryAfter("", now), null);
  assert.equal(Q.parseRetryAfter("-5", now), null);
  assert.equal(Q.parseRetryAfter("1.5", now), null);
  assert.equal(Q.parseRetryAfter("soon", now), null);
  assert.equal(Q.parseRetryAfter("99999999999", now), 24 * 3600 * 1000, "capped at a day");
});

test("backoff doubles from 5 s with +-20% jitter, capped at 30 min; Retry-After wins", () => {
  assert.equal(Q.backoffDelay(1, () => 0.5), 5000);
  assert.equal(Q.backoffDelay(2, () => 0.5), 10000);
  assert.equal(Q.backoffDelay(5, () => 0.5), 80000);
  assert.equal(Q.backoffDelay(40, () => 0.5), 30 * 60 * 1000);
  assert.equal(Q.backoffDelay(1, () => 0), 4000);
  assert.equal(Q.backoffDelay(1, () => 1), 6000);
  assert.equal(Q.retryDelay(3, 7000, () => 0.5), 7000);
  assert.equal(Q.retryDelay(3, null, () => 0.5), 20000);
});

test("enforceCap keeps the newest", () => {
  assert.deepEqual(Q.enforceCap(["a", "b", "c", "d"], 2), { drop: ["a", "b"], keep: ["c", "d"] });
  assert.deepEqual(Q.enforceCap(["a"], 2), { drop: [], keep: ["a"] });
});

test("queue keys sort by arrival time", () => {
  const a = Store.queueKey(999, "z");
  const b = Store.queueKey(1000, "a");
  assert.ok(a < b);
  assert.equal(a, "q:0000000000999:z");
});

test("flush sends in order, in batches of at most 500, and empties the queue", async () => {
  setup();
  const events = await fill(1201);
  const { post, calls } = fakePost([]);
  const r = await Q.flush({ store: Store, post, now: () => 5000 });
  assert.deepEqual(calls.map((c) => c.length), [500, 500, 201]);
  assert.deepEqual(calls.flat(), events.map((e) => e.id));
  assert.equal(r.sent, 1201);
  assert.equal((await Store.listQueue()).length, 0);
  assert.equal((await Store.getStats()).sent, 1201);
});

test("network error keeps everything and schedules an exponential retry; retry sends the same ids", async () => {
  setup();
  const events = await fill(3);
  let now = 10000;
  const down = fakePost(() => ({ status: 0 }));
  let r = await Q.flush({ store: Store, post: down.post, now: () => now, random: () => 0.5 });
  assert.equal(r.retryAt, 10000 + 5000);
  assert.equal((await Store.listQueue()).length, 3);
  assert.deepEqual(await Store.getBackoff(), { attempt: 1, nextAt: 15000 });
  assert.equal((await Store.getStats()).lastError, "network error");

  // a nudge during the backoff sends nothing
  r = await Q.flush({ store: Store, post: down.post, now: () => 12000 });
  assert.equal(down.calls.length, 1);
  assert.equal(r.retryAt, 15000);

  now = 15000;
  r = await Q.flush({ store: Store, post: down.post, now: () => now, random: () => 0.5 });
  assert.equal(r.retryAt, 15000 + 10000, "second failure doubles");

  const up = fakePost([]);
  r = await Q.flush({ store: Store, post: up.post, now: () => 99999, force: true });
  assert.deepEqual(up.calls, [events.map((e) => e.id)], "the very same UUIDs: the server counts them once");
  assert.deepEqual(await Store.getBackoff(), { attempt: 0, nextAt: 0 });
  assert.equal((await Store.listQueue()).length, 0);
});

test("429 and 503 honour Retry-After (seconds and HTTP-date)", async () => {
  setup();
  await fill(2);
  const now = Date.parse("Sat, 28 Nov 2026 09:00:00 GMT");
  const p = fakePost([{ status: 429, retryAfter: "42" }, { status: 503, retryAfter: "Sat, 28 Nov 2026 09:02:00 GMT" }]);
  let r = await Q.flush({ store: Store, post: p.post, now: () => now });
  assert.equal(r.retryAt, now + 42000);
  assert.equal((await Store.getStats()).lastError, "HTTP 429");
  r = await Q.flush({ store: Store, post: p.post, now: () => now, force: true });
  assert.equal(r.retryAt, now + 120000);
  assert.equal((await Store.listQueue()).length, 2);
  assert.equal((await Store.getStats()).dropped4xx, 0);
});

test("a 4xx other than 401/408/429 drops the batch and counts it", async () => {
  setup();
  await fill(4);
  const p = fakePost([{ status: 403 }]);
  const r = await Q.flush({ store: Store, post: p.post, now: () => 1 });
  assert.equal(r.dropped4xx, 4);
  assert.equal((await Store.listQueue()).length, 0);
  const stats = await Store.getStats();
  assert.equal(stats.dropped4xx, 4);
  assert.equal(stats.sent, 0);
  assert.equal(stats.lastError, "HTTP 403");
});

test("a 422 batch is halved until the one bad event is alone; only it is dropped", async () => {
  setup();
  const events = await fill(8);
  const bad = events[5].id;
  const p = fakePost((batch) => ({ status: batch.some((e) => e.id === bad) ? 422 : 202 }));
  const r = await Q.flush({ store: Store, post: p.post, now: () => 1 });
  assert.equal(r.dropped4xx, 1);
  assert.equal(r.sent, 7);
  assert.equal((await Store.getStats()).dropped4xx, 1);
  assert.equal((await Store.listQueue()).length, 0);
  const delivered = p.calls.filter((c) => !c.includes(bad)).flat();
  assert.deepEqual(delivered.sort(), events.filter((e) => e.id !== bad).map((e) => e.id).sort());
});

test("401 keeps the events for a later retry", async () => {
  setup();
  await fill(2);
  const p = fakePost([{ status: 401 }]);
  const r = await Q.flush({ store: Store, post: p.post, now: () => 1, random: () => 0.5 });
  assert.ok(r.retryAt);
  assert.equal((await Store.listQueue()).length, 2);
  assert.equal((await Store.getStats()).dropped4xx, 0);
});

test("over the cap the oldest events are dropped and counted, even while offline", async () => {
  setup({ cap: 5 });
  const events = await fill(8);
  const p = fakePost(() => ({ status: 0 }));
  const r = await Q.flush({ store: Store, post: p.post, now: () => 1 });
  assert.equal(r.droppedCap, 3);
  const left = (await Store.listQueue()).map((q) => q.event.id);
  assert.deepEqual(left, events.slice(3).map((e) => e.id));
  assert.equal((await Store.getStats()).droppedCap, 3);
  assert.deepEqual(p.calls, [left]);
});

test("events written while a pass is sending are picked up by the same pass", async () => {
  setup();
  await fill(2);
  const late = ev(99);
  const p = fakePost((events, n) => {
    if (n === 1) Store.enqueue(late, 999999);
    return { status: 202 };
  });
  const r = await Q.flush({ store: Store, post: p.post, now: () => 1 });
  assert.equal(r.sent, 3);
  assert.deepEqual(p.calls[1], [late.id]);
  assert.equal((await Store.listQueue()).length, 0);
});

test("settings: defaults, migration keeps unknown sites on, server normalised and validated", async () => {
  setup();
  assert.equal((await Store.getSettings()).server, "http://127.0.0.1:8000");
  const s = await Store.updateSettings({ server: "https://pf.example.org/api/", sites: { scholar: false } });
  assert.equal(s.server, "https://pf.example.org/api");
  assert.equal(s.sites.scholar, false);
  assert.equal(s.sites.arxiv, true);
  assert.equal(Store.migrate({ schema: 0, sites: { arxiv: false } }).sites.huggingface, true);
  assert.throws(() => Store.normaliseServer("ftp://x"), /http or https/);
  assert.throws(() => Store.normaliseServer("https://u:p@x.org"), /credentials/);
  assert.equal(Store.originPattern("http://127.0.0.1:8000"), "http://127.0.0.1:8000/*");
});

test("captureAllowed needs consent, a token, no pause and the site on", () => {
  const settings = Store.migrate(null);
  const ok = { settings, consent: { given: true }, auth: { token: "t" } };
  assert.equal(Store.captureAllowed(ok, "arxiv"), true);
  assert.equal(Store.captureAllowed({ ...ok, consent: null }, "arxiv"), false);
  assert.equal(Store.captureAllowed({ ...ok, auth: null }, "arxiv"), false);
  assert.equal(Store.captureAllowed({ ...ok, settings: { ...settings, paused: true } }, "arxiv"), false);
  assert.equal(Store.captureAllowed({ ...ok, settings: { ...settings, sites: { ...settings.sites, arxiv: false } } }, "arxiv"), false);
  assert.equal(Store.captureAllowed(ok, null), false);
});

test("event ids are UUID v4, also where crypto.randomUUID is missing (http:// pages)", () => {
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  assert.match(Store.newEventId(), re);
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: { getRandomValues: (a) => require("node:crypto").getRandomValues(a) }, configurable: true });
  try {
    const ids = new Set(Array.from({ length: 200 }, () => Store.newEventId()));
    assert.equal(ids.size, 200);
    for (const id of ids) assert.match(id, re);
  } finally {
    Object.defineProperty(globalThis, "crypto", saved);
  }
});
