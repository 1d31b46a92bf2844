/*
 * Firefox ESR smoke run, driven by tests/e2e/test_firefox_smoke.py (puppeteer-core over WebDriver
 * BiDi; no geckodriver). Usage: node firefox-smoke.cjs <extension dir> <api url> <proxy port>
 *
 * Installs the extension, consents on the welcome page (registering with the API), opens the
 * arXiv listing (served through an HTTP proxy at the real address) and clicks one paper. Prints
 * one JSON line {ok, token, steps}; the Python side checks the server got the click.
 */
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const puppeteer = require("puppeteer-core");

const [extDir, apiUrl, proxyPort] = process.argv.slice(2);
const FIREFOX = process.env.FIREFOX_PATH || "/usr/bin/firefox-esr";
const UUID = "6b1c9c1e-7f43-4a4e-9d7e-1c0ffee00001";

async function findPage(browser, suffix, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const page of await browser.pages()) {
      const url = await page.evaluate(() => document.URL).catch(() => "");
      if (url.endsWith(suffix)) return page;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no page ${suffix}`);
}

async function main() {
  const manifest = JSON.parse(fs.readFileSync(path.join(extDir, "manifest.json"), "utf8"));
  const geckoId = manifest.browser_specific_settings.gecko.id;
  const steps = [];
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      "extensions.webextensions.uuids": JSON.stringify({ [geckoId]: UUID }),
      "network.proxy.type": 1,
      "network.proxy.http": "127.0.0.1",
      "network.proxy.http_port": Number(proxyPort),
      "network.proxy.no_proxies_on": "127.0.0.1,localhost",
      "network.proxy.allow_hijacking_localhost": false,
      "services.settings.server": "http://127.0.0.1:9/",
      "browser.newtabpage.activity-stream.feeds.topsites": false,
    },
  });
  try {
    // WebDriver BiDi may not navigate to moz-extension:// pages (and reports their tab as
    // about:blank); the extension opens its own welcome page on install, as a user sees it.
    const installed = await browser.installExtension(extDir);
    steps.push(`installed ${installed}`);
    const page = await findPage(browser, "/pages/welcome.html");
    await page.waitForSelector("body[data-loaded='1']");
    await page.evaluate((server) => { document.getElementById("server").value = server; }, apiUrl);
    await page.click("#consent");
    await page.waitForSelector("#done:not([hidden])", { timeout: 15000 });
    steps.push("consented");
    const { auth } = await page.evaluate(() => chrome.storage.local.get("auth"));
    steps.push(`permissions ${JSON.stringify(await page.evaluate(() => chrome.permissions.getAll()))}`);
    const site = await browser.newPage();
    await site.goto("http://arxiv.org/list/astro-ph/new");
    await site.waitForSelector('a[href="/abs/1406.3020"]');
    await new Promise((r) => setTimeout(r, 500)); // content script at document_idle
    await Promise.all([site.waitForNavigation(), site.click('a[href="/abs/1406.3020"]')]);
    steps.push("clicked");
    // keep the browser open until the extension reports the events sent (or 15 s)
    let local = {};
    for (let i = 0; i < 60; i++) {
      local = await page.evaluate(() => chrome.storage.local.get(null));
      if (local.stats && local.stats.sent >= 1 && !Object.keys(local).some((k) => k.startsWith("q:"))) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    steps.push(`sent ${local.stats ? local.stats.sent : 0}`);
    process.stdout.write(JSON.stringify({ ok: true, token: auth.token, steps, stats: local.stats || null, queued: Object.keys(local).filter((k) => k.startsWith("q:")) }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err) }) + "\n");
  process.exit(1);
});
