/*
 * content.js: on supported paper sites only, records that the user opened a paper's page
 * ("open") or clicked a link to a paper ("click").
 *
 * Nothing happens before consent, while paused, or on a site switched off in the options. Each
 * event is written to chrome.storage.local first (its own key) and only then is the worker
 * nudged, so a click that navigates away while the worker sleeps is never lost. Only the paper
 * (canonical id, rebuilt URL, title, authors, abstract), the time and the site's host name are
 * recorded: never this page's address, the referrer or a query.
 */
/* global PfStore, PfExtract */
(() => {
  "use strict";
  const site = PfExtract.siteOf(location.hostname);
  if (!site) return;

  let state = null; // cached capture switches of this page; refreshed on every storage change
  const opened = new Set(); // papers already recorded as opened by this page (SPA re-renders)

  async function loadState() {
    state = await PfStore.getState();
    return state;
  }

  async function record(type, paper) {
    if (!paper || !(paper.id || paper.url)) return;
    const event = {
      id: PfStore.newEventId(),
      type,
      paper,
      ts: Math.floor(Date.now() / 1000),
      site: location.hostname,
    };
    await PfStore.enqueue(event);
    try {
      await chrome.runtime.sendMessage({ type: "nudge" });
    } catch {
      // the worker will find the event anyway: the storage write woke it
    }
  }

  function recordOpen() {
    if (!state || !PfStore.captureAllowed(state, site)) return;
    const { paper } = PfExtract.extractPage(document, location.href);
    if (!paper || opened.has(paper.id || paper.url)) return;
    opened.add(paper.id || paper.url);
    record("open", paper);
  }

  function onClick(event) {
    if (event.type === "auxclick" && event.button !== 1) return;
    if (event.type === "click" && event.button !== 0) return;
    if (state && !PfStore.captureAllowed(state, site)) return;
    const anchor = event.target && event.target.closest ? event.target.closest("a[href]") : null;
    if (!anchor) return;
    // Read the link now, while this page still exists; the click may navigate away next.
    const paper = PfExtract.paperForLink(anchor, document, location.href);
    if (!paper) return;
    if (state) record("click", paper);
    else loadState().then((s) => PfStore.captureAllowed(s, site) && record("click", paper));
  }

  document.addEventListener("click", onClick, true);
  document.addEventListener("auxclick", onClick, true);
  chrome.storage.onChanged.addListener((changes, areaName) => {
    if (areaName === "local" && (changes.settings || changes.consent || changes.auth)) loadState();
  });

  // Single-page sites (Hugging Face, alphaXiv) change papers without a page load.
  let lastHref = location.href;
  const onNavigate = () => {
    if (location.href === lastHref) return;
    lastHref = location.href;
    setTimeout(recordOpen, 800); // let the new paper's markup render
  };
  if (globalThis.navigation && navigation.addEventListener) navigation.addEventListener("navigatesuccess", onNavigate);
  else setInterval(onNavigate, 1500);

  loadState().then(recordOpen);
})();
