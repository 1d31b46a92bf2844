/* One manifest for Chromium and Firefox: minimal permissions, both background forms, and
 * `web-ext lint` with no errors (run on the source and on the built Firefox package). */
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { EXT } = require("./helpers.js");

const manifest = JSON.parse(fs.readFileSync(path.join(EXT, "manifest.json"), "utf8"));
const WEB_EXT = path.join(EXT, "node_modules", ".bin", "web-ext");

test("permissions are storage and alarms; host permission only for the default server", () => {
  assert.equal(manifest.manifest_version, 3);
  assert.deepEqual(manifest.permissions, ["storage", "alarms"]);
  assert.deepEqual(manifest.host_permissions, ["http://127.0.0.1:8000/*"]);
  assert.deepEqual(manifest.optional_host_permissions.sort(), ["http://*/*", "https://*/*"]);
});

test("content scripts run on the supported paper sites only", () => {
  const matches = manifest.content_scripts.flatMap((c) => c.matches);
  for (const m of matches) {
    assert.match(m, /^(\*|https):\/\/(\*\.)?(arxiv\.org|huggingface\.co|paperswithcode\.com|openreview\.net|aclanthology\.org|alphaxiv\.org|scholar\.google\.com)\//, m);
  }
  assert.equal(manifest.content_scripts[0].js.at(-1), "src/content.js");
  assert.equal(manifest.content_scripts[0].js[0], "src/paperid.js");
});

test("both background forms, gecko id and data collection permissions", () => {
  assert.equal(manifest.background.service_worker, "src/background.js");
  assert.equal(manifest.background.scripts.at(-1), "src/background.js");
  const worker = fs.readFileSync(path.join(EXT, "src", "background.js"), "utf8");
  const imported = /importScripts\(([^)]*)\)/.exec(worker)[1].match(/"([^"]+)"/g).map((s) => `src/${s.slice(1, -1)}`);
  assert.deepEqual(manifest.background.scripts.slice(0, -1), imported, "the same scripts in the same order");
  assert.match(manifest.browser_specific_settings.gecko.id, /@/);
  assert.ok(manifest.browser_specific_settings.gecko.data_collection_permissions.required.length > 0);
  for (const file of [...manifest.background.scripts, ...manifest.content_scripts[0].js]) assert.ok(fs.existsSync(path.join(EXT, file)), file);
});

function lint(dir) {
  let out;
  try {
    out = execFileSync(WEB_EXT, ["lint", "--source-dir", dir, "--output", "json", "--no-config-discovery",
      "--ignore-files", "node_modules/**", "test/**", "dist/**", "package.json", "package-lock.json"], { encoding: "utf8" });
  } catch (err) {
    out = err.stdout; // web-ext exits non-zero on errors; the JSON report is still there
  }
  return JSON.parse(out.slice(out.indexOf("{")));
}

test("web-ext lint: no errors on the source, none at all on the Firefox package", { skip: !fs.existsSync(WEB_EXT) && "npm ci first", timeout: 120000 }, () => {
  const report = lint(EXT);
  assert.deepEqual(report.errors, [], JSON.stringify(report.errors, null, 1));
  assert.deepEqual(report.warnings.map((w) => w.code), ["BACKGROUND_SERVICE_WORKER_IGNORED"]);

  execFileSync("bash", [path.join(EXT, "..", "scripts", "build-extension.sh")], { encoding: "utf8" });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pf-ff-"));
  try {
    execFileSync("python3", ["-m", "zipfile", "-e", path.join(EXT, "dist", "paperfeed-firefox.zip"), dir]);
    const ff = lint(dir);
    assert.deepEqual([ff.errors, ff.warnings], [[], []], JSON.stringify([ff.errors, ff.warnings], null, 1));
    assert.ok(fs.existsSync(path.join(EXT, "dist", "paperfeed-chrome.zip")));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
