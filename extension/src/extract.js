/*
 * extract.js: what a page of a supported paper site says about papers, as pure functions over a
 * DOM Document (the content script passes `document`; Node tests pass a linkedom Document built
 * from saved pages).
 *
 *   siteOf(hostname)                 -> "arxiv" | "huggingface" | ... | null
 *   extractPage(doc, url)            -> {site, kind, paper, entries}
 *       kind:    "paper" (the page is about one paper), "listing", "search", "other"
 *       paper:   {id, url, title, authors, abstract} or null: the page's own paper only
 *       entries: [{id, url, title, authors}] papers listed on the page (listings, results)
 *   paperForLink(anchor, doc, url)   -> {id, url, title, authors} or null, for a click
 *
 * Ids come from PaperId.canonicalPaperId only; `url` is always rebuilt from the id, never copied
 * from the page, so no query string or tracking parameter leaves the browser.
 */
(function (root, factory) {
  const api = factory(root);
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.PfExtract = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function (root) {
  "use strict";

  function paperId() {
    if (root.PaperId) return root.PaperId;
    /* global require */
    const mod = require("./paperid.js");
    return mod.PaperId || mod;
  }

  const SITE_HOSTS = [
    ["arxiv", /(^|\.)arxiv\.org$/],
    ["huggingface", /^huggingface\.co$/],
    ["paperswithcode", /^(www\.)?paperswithcode\.com$/],
    ["openreview", /^(www\.)?openreview\.net$/],
    ["aclanthology", /^(www\.)?aclanthology\.org$/],
    ["alphaxiv", /^(www\.)?alphaxiv\.org$/],
    ["scholar", /^scholar\.google\.[a-z]{2,3}(\.[a-z]{2})?$/],
  ];

  function siteOf(hostname) {
    const host = String(hostname || "").toLowerCase();
    for (const [site, re] of SITE_HOSTS) if (re.test(host)) return site;
    return null;
  }

  const norm = (s) => String(s || "").replace(/\s+/g, " ").trim();
  const text = (el) => (el ? norm(el.textContent) : "");

  function resolve(href, base) {
    try {
      const u = new URL(href, base);
      return u.protocol === "http:" || u.protocol === "https:" ? u : null;
    } catch {
      return null;
    }
  }

  function meta(doc, key) {
    const el = doc.querySelector(`meta[name="${key}"]`) || doc.querySelector(`meta[property="${key}"]`);
    return el ? norm(el.getAttribute("content")) : "";
  }

  function metaAll(doc, key) {
    return Array.from(doc.querySelectorAll(`meta[name="${key}"]`))
      .map((el) => norm(el.getAttribute("content")))
      .filter(Boolean);
  }

  /** A canonical paper URL rebuilt from a canonical id (never copied from the page). */
  const URL_OF = {
    arxiv: (k) => `https://arxiv.org/abs/${k}`,
    openreview: (k) => `https://openreview.net/forum?id=${encodeURIComponent(k)}`,
    acl: (k) => `https://aclanthology.org/${k}/`,
    pwc: (k) => `https://paperswithcode.com/paper/${k}`,
    doi: (k) => `https://doi.org/${k}`,
  };

  function canonicalUrl(id) {
    const sep = typeof id === "string" ? id.indexOf(":") : -1;
    const make = sep > 0 ? URL_OF[id.slice(0, sep)] : undefined;
    return make ? make(id.slice(sep + 1)) : undefined;
  }

  /** {id, url} for a link or page address, or null when it names no paper. */
  function paperRef(href, base) {
    const u = resolve(href, base);
    if (!u) return null;
    const id = paperId().canonicalPaperId(u.href);
    return id ? { id, url: canonicalUrl(id) } : null;
  }

  const refKey = (ref) => ref.id || ref.url;

  function stripDescriptor(el) {
    if (!el) return "";
    const clone = el.cloneNode(true);
    for (const d of clone.querySelectorAll(".descriptor")) d.remove();
    return text(clone);
  }

  function cleanTitle(title, site) {
    let t = norm(title);
    if (site === "paperswithcode") t = t.replace(/^Papers with Code - /i, "");
    if (site === "huggingface") t = t.replace(/^Paper page - /i, "");
    if (site === "alphaxiv") t = t.replace(/\s*\|\s*alphaXiv$/i, "");
    t = t.replace(/^Title:\s*/i, "");
    return t;
  }

  // The server's limits (server/schemas.py PaperIn): longer values would get the event refused.
  const LIMITS = { title: 1000, author: 300, authors: 100, abstract: 10000 };
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

  function paper(ref, fields) {
    const out = {};
    if (ref.id) out.id = ref.id;
    if (ref.url) out.url = ref.url;
    if (fields.title) out.title = cut(fields.title, LIMITS.title);
    const authors = (fields.authors || []).filter(Boolean).slice(0, LIMITS.authors).map((a) => cut(a, LIMITS.author));
    if (authors.length) out.authors = authors;
    if (fields.abstract) out.abstract = cut(fields.abstract, LIMITS.abstract);
    return out;
  }

  /* ---------- listing entries ---------- */

  function arxivEntries(doc, base) {
    const out = [];
    for (const li of doc.querySelectorAll("li.arxiv-result")) {
      const a = li.querySelector("p.list-title a[href]") || li.querySelector("a[href]");
      const ref = a && paperRef(a.getAttribute("href"), base);
      if (!ref) continue;
      out.push(paper(ref, {
        title: text(li.querySelector("p.title")),
        authors: Array.from(li.querySelectorAll("p.authors a")).map(text).filter(Boolean),
      }));
    }
    if (out.length) return out;
    for (const dt of doc.querySelectorAll("dt")) {
      let ref = null;
      for (const a of dt.querySelectorAll("a[href]")) {
        const u = resolve(a.getAttribute("href"), base);
        if (u && /^\/abs\//.test(u.pathname)) {
          ref = paperRef(u.href, base);
          if (ref) break;
        }
      }
      if (!ref) continue;
      let dd = dt.nextElementSibling;
      if (dd && dd.tagName.toLowerCase() !== "dd") dd = null;
      out.push(paper(ref, {
        title: dd ? stripDescriptor(dd.querySelector(".list-title")) : "",
        authors: dd ? Array.from(dd.querySelectorAll(".list-authors a")).map(text).filter(Boolean) : [],
      }));
    }
    return out;
  }

  function scholarEntries(doc, base) {
    const out = [];
    for (const h3 of doc.querySelectorAll("h3.gs_rt")) {
      const clone = h3.cloneNode(true);
      for (const tag of clone.querySelectorAll(".gs_ctc, .gs_ctu, .gs_ctg2")) tag.remove();
      const title = text(clone);
      const result = h3.closest(".gs_r, .gs_ri") || h3.parentNode;
      const links = [h3.querySelector("a[href]"), ...(result ? result.querySelectorAll(".gs_or_ggsm a[href], .gs_ggs a[href]") : [])];
      let ref = null;
      for (const a of links) {
        ref = a ? paperRef(a.getAttribute("href"), base) : null;
        if (ref && ref.id) break;
        ref = null;
      }
      const entry = paper(ref || {}, { title });
      const link = h3.querySelector("a[href]");
      // the result's own link, for display only; never sent (it is not a canonical paper URL)
      Object.defineProperty(entry, "link", { value: link ? resolve(link.getAttribute("href"), base)?.href : undefined, enumerable: false });
      out.push(entry);
    }
    return out;
  }

  /** Any site: every link that is a paper, titled by the best link text for it. */
  function linkEntries(doc, base) {
    const byKey = new Map();
    for (const a of doc.querySelectorAll("a[href]")) {
      const ref = paperRef(a.getAttribute("href"), base);
      if (!ref) continue;
      const key = refKey(ref);
      const t = text(a);
      const inHeading = Boolean(a.closest("h1, h2, h3, h4"));
      const prev = byKey.get(key);
      if (!prev) byKey.set(key, { ref, title: t, inHeading });
      else if ((inHeading && !prev.inHeading) || (inHeading === prev.inHeading && t.length > prev.title.length)) {
        byKey.set(key, { ref, title: t, inHeading });
      }
    }
    return Array.from(byKey.values()).map(({ ref, title }) => paper(ref, { title: looksLikeTitle(title) ? title : "" }));
  }

  function looksLikeTitle(t) {
    return t.length >= 8 && !/^(arxiv:|doi:|https?:|this https? url|pdf|html|abs|abstract|other|view|download|code|paper)\b/i.test(t);
  }

  function listEntries(doc, url, site = siteOf(new URL(url).hostname)) {
    switch (site) {
      case "arxiv": return arxivEntries(doc, url);
      case "scholar": return scholarEntries(doc, url);
      case null: return [];
      default: return linkEntries(doc, url);
    }
  }

  /* ---------- the page's own paper ---------- */

  function commonFields(doc, site) {
    return {
      title: cleanTitle(meta(doc, "citation_title"), site),
      authors: metaAll(doc, "citation_author"),
      abstract: meta(doc, "citation_abstract"),
    };
  }

  function firstArxivRef(scope, base) {
    if (!scope) return null;
    for (const a of scope.querySelectorAll("a[href]")) {
      const u = resolve(a.getAttribute("href"), base);
      if (u && /(^|\.)arxiv\.org$/.test(u.hostname)) {
        const ref = paperRef(u.href, base);
        if (ref && ref.id) return ref;
      }
    }
    return null;
  }

  const PAGE_PAPER = {
    arxiv(doc, u) {
      if (!/^\/(abs|pdf|html)\//.test(u.pathname)) return null;
      const ref = paperRef(u.href) || paperRef(meta(doc, "citation_arxiv_id"));
      if (!ref) return null;
      const f = commonFields(doc, "arxiv");
      f.title = f.title || stripDescriptor(doc.querySelector("h1.title")) ||
        text(doc.querySelector("h1.ltx_title_document, h1.ltx_title")) || cleanTitle(meta(doc, "og:title"));
      if (!f.abstract) {
        const bq = doc.querySelector("blockquote.abstract");
        f.abstract = bq ? stripDescriptor(bq).replace(/^Abstract:\s*/i, "") : meta(doc, "og:description");
      }
      return paper(ref, f);
    },
    huggingface(doc, u) {
      if (!/^\/papers\/[^/]+\/?$/.test(u.pathname)) return null;
      const ref = paperRef(u.href);
      if (!ref) return null;
      const f = commonFields(doc, "huggingface");
      f.title = f.title || text(doc.querySelector("main h1, h1")) || cleanTitle(meta(doc, "og:title"), "huggingface");
      return paper(ref, f);
    },
    alphaxiv(doc, u) {
      const ref = paperRef(u.href) || paperRef(meta(doc, "citation_arxiv_id"));
      if (!ref) return null;
      const f = commonFields(doc, "alphaxiv");
      f.title = f.title || cleanTitle(meta(doc, "og:title"), "alphaxiv") || text(doc.querySelector("h1"));
      return paper(ref, f);
    },
    paperswithcode(doc, u) {
      const own = paperRef(u.href);
      if (!own) return null;
      const ref = firstArxivRef(doc.querySelector(".paper-abstract"), u.href) ||
        paperRef(meta(doc, "citation_arxiv_id")) || own;
      const f = commonFields(doc, "paperswithcode");
      f.title = f.title || text(doc.querySelector(".paper-title h1")) || cleanTitle(meta(doc, "og:title"), "paperswithcode");
      if (!f.authors.length) f.authors = Array.from(doc.querySelectorAll(".paper-title .author-span a")).map(text).filter(Boolean);
      if (!f.abstract) f.abstract = text(doc.querySelector(".paper-abstract p"));
      return paper(ref, f);
    },
    openreview(doc, u) {
      const own = paperRef(u.href);
      const f = commonFields(doc, "openreview");
      if (!own || !f.title) return null;
      return paper(paperRef(meta(doc, "citation_arxiv_id")) || own, f);
    },
    aclanthology(doc, u) {
      const own = paperRef(u.href);
      const f = commonFields(doc, "aclanthology");
      if (!own || !f.title) return null;
      if (!f.abstract) f.abstract = text(doc.querySelector(".acl-abstract span") || doc.querySelector(".acl-abstract"));
      return paper(paperRef(meta(doc, "citation_arxiv_id")) || own, f);
    },
    scholar() {
      return null;
    },
  };

  function extractPage(doc, url) {
    const u = resolve(url);
    const site = u ? siteOf(u.hostname) : null;
    const result = { site, kind: "other", paper: null, entries: [] };
    if (!site) return result;
    result.paper = PAGE_PAPER[site](doc, u) || null;
    if (result.paper && !result.paper.title) {
      const t = cleanTitle(meta(doc, "og:title"), site);
      if (t) result.paper.title = t;
    }
    result.entries = listEntries(doc, u.href, site);
    if (result.paper) result.kind = "paper";
    else if (site === "scholar" || /^\/search\b/.test(u.pathname)) result.kind = "search";
    else if (result.entries.length) result.kind = "listing";
    return result;
  }

  /** The paper a clicked link points to, titled from the listing entry or the page itself. */
  function paperForLink(anchor, doc, url) {
    const href = anchor && anchor.getAttribute && anchor.getAttribute("href");
    if (!href) return null;
    const ref = paperRef(href, url);
    if (!ref) return null;
    const page = extractPage(doc, url);
    const key = refKey(ref);
    const known = page.entries.find((e) => (e.id || e.url) === key) ||
      (page.paper && (page.paper.id || page.paper.url) === key ? page.paper : null);
    if (known && known.title) {
      const out = paper(ref, { title: known.title, authors: known.authors });
      return out;
    }
    const t = text(anchor);
    return paper(ref, { title: looksLikeTitle(t) ? t : "" });
  }

  return { siteOf, extractPage, listEntries, paperForLink, paperRef, canonicalUrl, norm };
});
