/*
 * feed.js: the "For you" and "Trending" lists, shared by the popup (compact) and the full-page
 * view (with abstracts). The page's <body> carries data-view="popup" or data-view="page";
 * body[data-loaded="1"] is set once a tab has been rendered, whatever its state.
 */
/* global PfUi */
(function () {
  "use strict";
  const { el, send, paperHref, authorLine, problemText } = PfUi;
  const full = document.body.dataset.view === "page";
  const LIMIT = full ? 30 : 10;

  const list = document.getElementById("list");
  const notice = document.getElementById("notice");
  const more = document.getElementById("more");
  const tabs = Array.from(document.querySelectorAll("[role=tab]"));
  let trendingOffset = 0; // page-local paging position; the page is thrown away on close

  function showNotice(kind, text, action) {
    notice.replaceChildren();
    notice.hidden = !text;
    notice.dataset.kind = kind || "";
    if (text) notice.append(el("span", { text }));
    if (action) notice.append(" ", action);
  }

  function itemNode(item, tab) {
    const paper = item.paper || {};
    const href = paperHref(paper);
    const title = String(paper.title || paper.id || "Untitled paper");
    const li = el("li", { class: "paper", dataset: { paperId: String(paper.id || "") } });
    li.append(href
      ? el("a", { class: "paper-title", href, target: "_blank", rel: "noopener noreferrer", text: title })
      : el("span", { class: "paper-title", text: title }));
    const authors = authorLine(paper.authors, full ? 8 : 3);
    if (authors) li.append(el("div", { class: "paper-authors", text: authors }));
    if (full && paper.abstract) li.append(el("p", { class: "paper-abstract", text: String(paper.abstract) }));
    const meta = el("div", { class: "paper-meta" });
    if (tab === "foryou") {
      if (item.reason) meta.append(el("span", { class: "paper-reason", text: String(item.reason) }));
      meta.append(el("button", {
        class: "dismiss", type: "button", text: "Not interested",
        title: "Show fewer papers like this",
        onclick: (ev) => dismiss(ev.currentTarget, li, paper),
      }));
    } else if (typeof item.readers === "number") {
      const n = Math.max(1, Math.round(item.readers));
      meta.append(el("span", { class: "paper-reason", text: `${n} reader${n === 1 ? "" : "s"} recently` }));
    }
    li.append(meta);
    return li;
  }

  async function dismiss(button, li, paper) {
    button.disabled = true;
    const res = await send("dismiss", { paper: { id: paper.id, url: paper.url, title: paper.title } });
    if (res.ok) {
      li.remove();
      if (!list.children.length) showNotice("empty", "Nothing left here. Open a few papers and check back.");
    } else {
      button.disabled = false;
      showNotice("error", "Couldn't record that. Try again.");
    }
  }

  async function load(tab, append = false) {
    document.body.dataset.loaded = "0";
    if (!append) {
      list.replaceChildren();
      trendingOffset = 0;
    }
    more.hidden = true;
    const status = await send("status");
    const server = status.ok ? status.data.server : "";
    if (status.ok && !status.data.registered) {
      const link = el("a", { href: chrome.runtime.getURL("pages/welcome.html"), target: "_blank", text: "Turn on Paperfeed" });
      showNotice("unregistered", "Paperfeed is off: nothing is collected until you turn it on.", link);
      document.body.dataset.loaded = "1";
      return;
    }
    const res = tab === "foryou"
      ? await send("recommendations", { limit: LIMIT })
      : await send("trending", { limit: LIMIT, offset: trendingOffset });
    if (!res.ok) {
      const p = problemText(res, server);
      showNotice(p.kind, p.text);
    } else {
      const items = Array.isArray(res.data && res.data.items) ? res.data.items : [];
      if (tab === "foryou" && res.data.personalised === false) {
        showNotice("not-personalised", "Not personalised yet: open a few papers and this list will follow your reading. Meanwhile, here is what's trending.");
      } else if (!items.length && !append) {
        showNotice("empty", tab === "foryou" ? "Nothing for you yet. Open a few papers and check back." : "Nothing is trending yet.");
      } else {
        showNotice("", "");
      }
      for (const item of items) list.append(itemNode(item, tab));
      if (tab === "trending") {
        trendingOffset += items.length;
        more.hidden = !full || items.length < LIMIT;
      }
    }
    const queued = document.getElementById("queued");
    if (queued && status.ok) queued.textContent = status.data.queued ? `${status.data.queued} waiting to be sent` : "";
    document.body.dataset.loaded = "1";
  }

  function select(tab) {
    for (const t of tabs) t.setAttribute("aria-selected", String(t.dataset.tab === tab));
    document.body.dataset.tab = tab;
    load(tab);
  }

  for (const t of tabs) t.addEventListener("click", () => select(t.dataset.tab));
  more.addEventListener("click", () => load("trending", true));
  const initial = new URLSearchParams(location.search).get("tab") === "trending" ? "trending" : "foryou";
  select(initial);
})();
