/*
 * storage.js: the one wrapper around chrome.storage.local for every part of the extension
 * (service worker, content scripts, extension pages, Node tests with a fake `chrome`).
 *
 * Layout of chrome.storage.local:
 *   settings  {schema, server, paused, sites: {<site>: bool}, queueCap}   (DEFAULTS + migrations)
 *   consent   {given: true, at: <unix s>, version}                         (absent = no capture)
 *   auth      {server, userId, token}                                     (from POST /v1/users)
 *   stats     {sent, dropped4xx, droppedCap, lastError, lastAttemptAt, lastSentAt}
 *   backoff   {attempt, nextAt (ms)}                                      (persisted retry state)
 *   q:<13-digit ms>:<uuid>  one queued event per key, so concurrent writers never race on a
 *                           shared array and the key order is the arrival order.
 */
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.PfStore = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  const SCHEMA = 1;
  const QUEUE_PREFIX = "q:";
  const SITES = ["arxiv", "huggingface", "paperswithcode", "openreview", "aclanthology", "alphaxiv", "scholar"];
  const DEFAULT_SETTINGS = Object.freeze({
    schema: SCHEMA,
    server: "http://127.0.0.1:8000",
    paused: false,
    sites: Object.freeze(Object.fromEntries(SITES.map((s) => [s, true]))),
    queueCap: 5000,
  });
  const EMPTY_STATS = Object.freeze({
    sent: 0, dropped4xx: 0, droppedCap: 0, lastError: null, lastAttemptAt: null, lastSentAt: null,
  });

  // Each migration takes settings of schema n-1 and returns schema n.
  const MIGRATIONS = {
    // 1: first schema; nothing to migrate from.
  };

  function area() {
    return globalThis.chrome.storage.local;
  }

  function normaliseServer(value) {
    let url;
    try {
      url = new URL(String(value).trim());
    } catch {
      throw new Error("Server address is not a URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("Server address must be http or https");
    if (url.username || url.password || url.search || url.hash) throw new Error("Server address must not carry credentials, a query or a fragment");
    return url.origin + url.pathname.replace(/\/+$/, "");
  }

  /** Match pattern of a server address, for host_permissions and permissions.request. */
  function originPattern(server) {
    const url = new URL(server);
    return `${url.protocol}//${url.host}/*`;
  }

  function migrate(stored) {
    if (!stored || typeof stored !== "object") return structuredClone(DEFAULT_SETTINGS);
    let s = { ...stored };
    for (let v = (s.schema || 0) + 1; v <= SCHEMA; v++) if (MIGRATIONS[v]) s = MIGRATIONS[v](s);
    return {
      ...DEFAULT_SETTINGS,
      ...s,
      schema: SCHEMA,
      sites: { ...DEFAULT_SETTINGS.sites, ...(s.sites || {}) },
    };
  }

  async function getSettings() {
    const { settings } = await area().get("settings");
    return migrate(settings);
  }

  async function updateSettings(patch) {
    const current = await getSettings();
    const next = { ...current, ...patch, sites: { ...current.sites, ...(patch.sites || {}) } };
    if (patch.server !== undefined) next.server = normaliseServer(patch.server);
    await area().set({ settings: next });
    return next;
  }

  async function getState() {
    const got = await area().get(["settings", "consent", "auth"]);
    return { settings: migrate(got.settings), consent: got.consent || null, auth: got.auth || null };
  }

  /** Capture is on only after consent and registration, when not paused and the site is on. */
  function captureAllowed(state, site) {
    return Boolean(
      state.consent && state.consent.given && state.auth && state.auth.token &&
      !state.settings.paused && site && state.settings.sites[site] !== false
    );
  }

  async function setConsentAndAuth(consent, auth) {
    await area().set({ consent, auth });
  }

  async function getAuth() {
    const { auth } = await area().get("auth");
    return auth || null;
  }

  /** A UUID v4; crypto.randomUUID exists only in secure contexts (not on http:// pages). */
  function newEventId() {
    const c = globalThis.crypto;
    if (typeof c.randomUUID === "function") return c.randomUUID();
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function queueKey(nowMs, id) {
    return `${QUEUE_PREFIX}${String(Math.floor(nowMs)).padStart(13, "0")}:${id}`;
  }

  /** Write one event to the persistent queue (first step of delivery). Returns its key. */
  async function enqueue(event, nowMs = Date.now()) {
    const key = queueKey(nowMs, event.id);
    await area().set({ [key]: event });
    return key;
  }

  /** All queued events, oldest first, as [{key, event}]. */
  async function listQueue() {
    const all = await area().get(null);
    return Object.keys(all)
      .filter((k) => k.startsWith(QUEUE_PREFIX))
      .sort()
      .map((key) => ({ key, event: all[key] }));
  }

  async function removeKeys(keys) {
    if (keys.length) await area().remove(keys);
  }

  async function getStats() {
    const { stats } = await area().get("stats");
    return { ...EMPTY_STATS, ...(stats || {}) };
  }

  /** Add counters (numbers) and overwrite other fields. Only the worker writes stats. */
  async function updateStats(delta) {
    const stats = await getStats();
    for (const [k, v] of Object.entries(delta)) {
      stats[k] = typeof v === "number" && typeof EMPTY_STATS[k] === "number" ? stats[k] + v : v;
    }
    await area().set({ stats });
    return stats;
  }

  async function getBackoff() {
    const { backoff } = await area().get("backoff");
    return backoff || { attempt: 0, nextAt: 0 };
  }

  async function setBackoff(backoff) {
    await area().set({ backoff });
  }

  /** Forget the user: everything but the settings (server address, per-site switches). */
  async function clearUserState() {
    const all = await area().get(null);
    await area().remove(Object.keys(all).filter((k) => k !== "settings"));
  }

  return {
    SCHEMA, SITES, QUEUE_PREFIX, DEFAULT_SETTINGS, EMPTY_STATS,
    normaliseServer, originPattern, migrate, getSettings, updateSettings, getState, captureAllowed,
    setConsentAndAuth, getAuth, newEventId, queueKey, enqueue, listQueue, removeKeys, getStats, updateStats,
    getBackoff, setBackoff, clearUserState,
  };
});
