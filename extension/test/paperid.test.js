/**
 * Tests for src/paperid.js: every case of the shared vectors (tests/vectors/paper_ids.json, also
 * run by tests/test_paperid.py against the Python twin), the plain-script global, and a seeded
 * randomized check that nothing throws, results are fixed points, and generated ids round-trip.
 */
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = path.join(__dirname, "..", "src", "paperid.js");
const PaperId = require(SOURCE);
const { canonicalPaperId, isPaperUrl, SUPPORTED_HOSTS } = PaperId;
const VECTORS = JSON.parse(
  fs.readFileSync(path.join(__dirname, "..", "..", "tests", "vectors", "paper_ids.json"), "utf8"),
);

test("vector file has at least 80 distinct cases", () => {
  const inputs = VECTORS.canonical.map((c) => c.input);
  assert.ok(inputs.length >= 80);
  assert.equal(new Set(inputs).size, inputs.length);
});

test("canonicalPaperId: every shared vector", async (t) => {
  for (const c of VECTORS.canonical) {
    await t.test(c.note, () => {
      assert.equal(canonicalPaperId(c.input), c.expected, JSON.stringify(c.input.slice(0, 120)));
      if (c.expected !== null) assert.equal(canonicalPaperId(c.expected), c.expected);
    });
  }
});

test("isPaperUrl: every shared vector", async (t) => {
  for (const c of VECTORS.is_paper_url) {
    await t.test(c.note, () => assert.equal(isPaperUrl(c.input), c.expected, c.input));
  }
});

test("SUPPORTED_HOSTS matches the vectors and is frozen", () => {
  assert.deepEqual([...SUPPORTED_HOSTS], VECTORS.supported_hosts);
  assert.ok(Object.isFrozen(SUPPORTED_HOSTS));
});

test("non-strings are rejected without throwing", () => {
  for (const value of [undefined, null, 2401.12345, {}, ["2401.12345"], Symbol("x"), 1n]) {
    assert.equal(canonicalPaperId(value), null);
    assert.equal(isPaperUrl(value), false);
  }
});

test("works as a plain script (content script / importScripts): global PaperId", () => {
  const context = vm.createContext({ URL });
  vm.runInContext(fs.readFileSync(SOURCE, "utf8"), context);
  const { PaperId: global } = context;
  assert.equal(global.canonicalPaperId("https://arxiv.org/abs/1905.02244v5"), "arxiv:1905.02244");
  assert.equal(global.isPaperUrl("https://arxiv.org/list/cs/new"), false);
});

// --- seeded randomized checks -------------------------------------------------------------------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = mulberry32(20240119);
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const pick = (items) => items[int(0, items.length - 1)];
const pad = (n, width) => String(n).padStart(width, "0");

function randomArxivId() {
  const version = random() < 0.5 ? "" : "v" + int(1, 30);
  if (random() < 0.6) {
    const yy = int(7, 99);
    const mm = int(yy === 7 ? 4 : 1, 12);
    const digits = yy < 15 ? 4 : 5;
    const base = pad(yy, 2) + pad(mm, 2) + "." + pad(int(1, 10 ** digits - 1), digits);
    return [base + version, "arxiv:" + base];
  }
  const year = int(1991, 2007);
  const mm = int(1, year === 2007 ? 3 : 12);
  const archive = pick(["hep-th", "math", "cs", "astro-ph", "cond-mat", "quant-ph"]);
  const digits = pad(year % 100, 2) + pad(mm, 2) + pad(int(1, 999), 3);
  const subject = pick(["", ".GT", ".AI"]);
  return [archive + subject + "/" + digits + version, "arxiv:" + archive + "/" + digits];
}

const URL_FORMS = [
  "https://arxiv.org/abs/{id}",
  "http://export.arxiv.org/abs/{id}/",
  "https://www.arxiv.org/pdf/{id}.pdf",
  "https://arxiv.org/pdf/{id}",
  "https://arxiv.org/html/{id}/x1.png",
  "https://arxiv.org/format/{id}",
  "https://arxiv.org/ps/{id}",
  "https://arxiv.org/abs?id={id}",
  "https://huggingface.co/papers/{id}",
  "https://www.alphaxiv.org/overview/{id}",
  "https://alphaxiv.org/abs/{id}",
  "https://ar5iv.org/abs/{id}",
  "https://ar5iv.labs.arxiv.org/html/{id}",
  "arxiv.org/abs/{id}",
];

test("randomized: generated ids round-trip through every URL form", () => {
  for (let i = 0; i < 3000; i += 1) {
    const [id, expected] = randomArxivId();
    const form = pick(URL_FORMS);
    const url = form.replace("{id}", id) + pick(["", "#frag", form.includes("?") ? "&x=1" : "?x=1"]);
    assert.equal(canonicalPaperId(url), expected, url);
    assert.equal(isPaperUrl(url), true, url);
    assert.equal(canonicalPaperId(id), expected, id);
    assert.equal(canonicalPaperId("arXiv:" + id), expected, id);
    assert.equal(isPaperUrl(id), false, id);
  }
});

test("randomized: never throws, results are fixed points", () => {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789/.:?#&=%-_~@[]\\ v\u00e9\u0000";
  const prefixes = ["", "https://", "http://", "HTTPS://", "arxiv:", "doi:", "acl:", "10.1145/"];
  const hosts = [...SUPPORTED_HOSTS, "example.com", ""];
  for (let i = 0; i < 5000; i += 1) {
    let value = pick(prefixes) + (random() < 0.7 ? pick(hosts) : "");
    const length = int(0, 60);
    for (let j = 0; j < length; j += 1) value += alphabet[int(0, alphabet.length - 1)];
    if (random() < 0.2) value += randomArxivId()[0];
    const result = canonicalPaperId(value);
    if (result !== null) assert.equal(canonicalPaperId(result), result, value);
    assert.equal(typeof isPaperUrl(value), "boolean");
    if (isPaperUrl(value)) assert.notEqual(result, null, value);
  }
});

test("randomized: very long inputs are rejected quickly", () => {
  const started = Date.now();
  for (const unit of ["a", "1", "/", "-", "a-", "hep-th", "%2", "10.1234/"]) {
    for (const value of [unit.repeat(3000), "https://arxiv.org/abs/" + unit.repeat(600)]) {
      const result = canonicalPaperId(value);
      if (value.length > 2048) assert.equal(result, null);
    }
  }
  assert.ok(Date.now() - started < 1000);
});
