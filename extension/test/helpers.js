/* Shared test helpers: PaperId loading, saved pages as DOM Documents, a small chrome.* fake. */
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const EXT = path.resolve(__dirname, "..");
const REPO = path.resolve(EXT, "..");
const PAGES = path.resolve(REPO, "..", "shared", "data", "pages");
const VECTORS = path.join(REPO, "tests", "vectors", "paper_ids.json");

/** extension/src/paperid.js, also set as the global PaperId (as in the browser). */
function loadPaperId() {
  const mod = require(path.join(EXT, "src", "paperid.js"));
  globalThis.PaperId = mod.PaperId || mod;
  return globalThis.PaperId;
}

function loadPage(rel) {
  const { DOMParser } = require("linkedom");
  const html = fs.readFileSync(path.join(PAGES, rel), "utf8");
  return new DOMParser().parseFromString(html, "text/html");
}

/** In-memory chrome.storage.local (+ onChanged), runtime, alarms: enough for the worker code. */
function fakeChrome() {
  const data = new Map();
  const listeners = { changed: [], message: [], installed: [], startup: [], alarm: [] };
  const clone = (v) => (v === undefined ? v : structuredClone(v));
  const fire = (changes) => { for (const l of listeners.changed) l(changes, "local"); };
  const alarms = new Map();
  const local = {
    async get(keys) {
      const out = {};
      if (keys === null || keys === undefined) for (const [k, v] of data) out[k] = clone(v);
      else for (const k of [].concat(keys)) if (data.has(k)) out[k] = clone(data.get(k));
      return out;
    },
    async set(items) {
      const changes = {};
      for (const [k, v] of Object.entries(items)) { changes[k] = { oldValue: clone(data.get(k)), newValue: clone(v) }; data.set(k, clone(v)); }
      fire(changes);
    },
    async remove(keys) {
      const changes = {};
      for (const k of [].concat(keys)) if (data.has(k)) { changes[k] = { oldValue: data.get(k) }; data.delete(k); }
      fire(changes);
    },
    async clear() { await local.remove([...data.keys()]); },
  };
  const ev = (name) => ({ addListener: (f) => listeners[name].push(f), removeListener() {}, hasListener: () => listeners[name].length > 0 });
  return {
    data, listeners, alarms,
    storage: { local, onChanged: ev("changed") },
    runtime: {
      id: "testextensionid", onMessage: ev("message"), onInstalled: ev("installed"), onStartup: ev("startup"),
      getURL: (p = "") => `chrome-extension://testextensionid/${p}`,
      async sendMessage() {},
    },
    alarms: {
      async get(name) { return alarms.get(name); },
      async create(name, info) { alarms.set(name, { name, ...info }); },
      async clear(name) { return alarms.delete(name); },
      onAlarm: ev("alarm"),
    },
    tabs: { async create() {} },
    permissions: { async contains() { return true; } },
  };
}

module.exports = { EXT, REPO, PAGES, VECTORS, loadPaperId, loadPage, fakeChrome };
