/* Extractors over every saved page in /work/shared/data/pages (expectations from its README). */
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { loadPaperId, loadPage } = require("./helpers.js");

loadPaperId();
const X = require("../src/extract.js");

const ids = (entries) => entries.map((e) => e.id);
const distinct = (xs) => new Set(xs).size;

test("siteOf knows the supported hosts and nothing else", () => {
  assert.equal(X.siteOf("arxiv.org"), "arxiv");
  assert.equal(X.siteOf("export.arxiv.org"), "arxiv");
  assert.equal(X.siteOf("huggingface.co"), "huggingface");
  assert.equal(X.siteOf("paperswithcode.com"), "paperswithcode");
  assert.equal(X.siteOf("openreview.net"), "openreview");
  assert.equal(X.siteOf("aclanthology.org"), "aclanthology");
  assert.equal(X.siteOf("www.alphaxiv.org"), "alphaxiv");
  assert.equal(X.siteOf("scholar.google.com"), "scholar");
  assert.equal(X.siteOf("scholar.google.co.jp"), "scholar");
  assert.equal(X.siteOf("evilarxiv.org"), null);
  assert.equal(X.siteOf("arxiv.org.evil.com"), null);
  assert.equal(X.siteOf("google.com"), null);
});

test("arXiv abstract page: id, exact title, authors, abstract", () => {
  const r = X.extractPage(loadPage("arxiv/abs-2004.10162.html"), "https://arxiv.org/abs/2004.10162");
  assert.equal(r.kind, "paper");
  assert.equal(r.paper.id, "arxiv:2004.10162");
  assert.equal(r.paper.url, "https://arxiv.org/abs/2004.10162");
  assert.equal(r.paper.title, "EMPIR: Ensembles of Mixed Precision Deep Networks for Increased Robustness against Adversarial Attacks");
  assert.deepEqual(r.paper.authors, ["Sen, Sanchari", "Ravindran, Balaraman", "Raghunathan, Anand"]);
  assert.match(r.paper.abstract, /^Ensuring robustness of Deep Neural Networks/);
});

test("arXiv abstract page reached with a version and a query string still gives the bare id", () => {
  const r = X.extractPage(loadPage("arxiv/abs-2004.10162.html"), "https://arxiv.org/abs/2004.10162v1?context=cs");
  assert.equal(r.paper.id, "arxiv:2004.10162");
  assert.equal(r.paper.url, "https://arxiv.org/abs/2004.10162");
});

test("arXiv listing /list/astro-ph/new (2014 layout): 72 entries, first/second/last", () => {
  const r = X.extractPage(loadPage("arxiv/list-astro-ph-new-2014-06-13.html"), "http://arxiv.org/list/astro-ph/new");
  assert.equal(r.kind, "listing");
  assert.equal(r.paper, null);
  assert.equal(r.entries.length, 72);
  assert.equal(distinct(ids(r.entries)), 72);
  assert.deepEqual([r.entries[0].id, r.entries[0].title], ["arxiv:1406.3020", "Exoplanet population inference and the abundance of Earth analogs from noisy, incomplete catalogs"]);
  assert.deepEqual([r.entries[1].id, r.entries[1].title], ["arxiv:1406.3023", "Driving the Growth of the Earliest Supermassive Black Holes with Major Mergers of Host Galaxies"]);
  assert.deepEqual([r.entries[71].id, r.entries[71].title], ["arxiv:1406.2854", "Observational Constraints on EoS parameters of Emergent Universe"]);
  assert.deepEqual(r.entries[0].authors, ["Daniel Foreman-Mackey", "David W. Hogg", "Timothy D. Morton"]);
  assert.ok(r.entries.every((e) => e.title && !/\s\s/.test(e.title)));
});

test("arXiv catchup listing: 68 listed entries, not the 69th id linked from a Comments field", () => {
  const r = X.extractPage(loadPage("arxiv/catchup-astro-ph-2017-04-01.html"),
    "https://arxiv.org/catchup?smonth=4&group=grp_&sday=1&num=50&archive=astro-ph&method=with&syear=2017");
  assert.equal(r.kind, "listing");
  assert.equal(r.paper, null);
  assert.equal(r.entries.length, 68);
  assert.equal(distinct(ids(r.entries)), 68);
  assert.ok(!ids(r.entries).includes("arxiv:1704.01124"));
  assert.deepEqual([r.entries[0].id, r.entries[0].title], ["arxiv:1703.10609", "The supersoft X-ray source in V5116 Sgr I. The high resolution spectra"]);
  assert.deepEqual([r.entries[1].id, r.entries[1].title], ["arxiv:1703.10610", "The Hydrangea simulations: galaxy formation in and around massive clusters"]);
  assert.deepEqual([r.entries[67].id, r.entries[67].title], ["arxiv:1703.10180", "Cosmological signatures of ultra-light dark matter with an axion-like potential"]);
});

test("arXiv search results: 200 results, no single current paper", () => {
  const r = X.extractPage(loadPage("arxiv/search-abstract-distributed-systems-size200.html"),
    "https://arxiv.org/search/?searchtype=abstract&query=distributed+systems&abstracts=show&size=200&order=");
  assert.equal(r.kind, "search");
  assert.equal(r.paper, null);
  assert.equal(r.entries.length, 200);
  assert.equal(distinct(ids(r.entries)), 200);
  assert.deepEqual([r.entries[0].id, r.entries[0].title], ["arxiv:2512.03003", "The role of the top Yukawa coupling in triple Higgs production at the LHC"]);
  assert.deepEqual([r.entries[1].id, r.entries[1].title], ["arxiv:2512.02934", "Stability of quantum chaos against weak non-unitarity"]);
  assert.deepEqual([r.entries[199].id, r.entries[199].title], ["arxiv:2512.08261", "Beyond Traditional Diagnostics: Transforming Patient-Side Information into Predictive Insights with Knowledge Graphs and Prototypes"]);
});

test("clicks on listing links carry the entry's id and title; a Comments link gets no borrowed title", () => {
  const url = "https://arxiv.org/catchup?smonth=4&group=grp_&sday=1&num=50&archive=astro-ph&method=with&syear=2017";
  const doc = loadPage("arxiv/catchup-astro-ph-2017-04-01.html");
  const abs = doc.querySelector('a[href="/abs/1703.10610"]');
  assert.deepEqual(X.paperForLink(abs, doc, url), {
    id: "arxiv:1703.10610", url: "https://arxiv.org/abs/1703.10610",
    title: "The Hydrangea simulations: galaxy formation in and around massive clusters",
    authors: X.extractPage(doc, url).entries[1].authors,
  });
  const pdf = doc.querySelector('a[href="/pdf/1703.10610"]');
  assert.equal(X.paperForLink(pdf, doc, url).title, "The Hydrangea simulations: galaxy formation in and around massive clusters");
  const comment = doc.querySelector('a[href="https://arxiv.org/abs/1704.01124"]');
  assert.deepEqual(X.paperForLink(comment, doc, url), { id: "arxiv:1704.01124", url: "https://arxiv.org/abs/1704.01124" });
  const author = doc.querySelector('a[href^="/find/"]');
  if (author) assert.equal(X.paperForLink(author, doc, url), null);
});

test("search result click: the result title", () => {
  const url = "https://arxiv.org/search/?searchtype=abstract&query=distributed+systems";
  const doc = loadPage("arxiv/search-abstract-distributed-systems-size200.html");
  const a = doc.querySelector('a[href="https://arxiv.org/pdf/2512.02934"]');
  const p = X.paperForLink(a, doc, url);
  assert.equal(p.id, "arxiv:2512.02934");
  assert.equal(p.title, "Stability of quantum chaos against weak non-unitarity");
});

test("Papers with Code paper page: arXiv 1905.02244, 'Searching for MobileNetV3'", () => {
  const r = X.extractPage(loadPage("paperswithcode/paper-searching-for-mobilenetv3.html"), "https://paperswithcode.com/paper/searching-for-mobilenetv3");
  assert.equal(r.kind, "paper");
  assert.equal(r.paper.id, "arxiv:1905.02244");
  assert.equal(r.paper.url, "https://arxiv.org/abs/1905.02244");
  assert.equal(r.paper.title, "Searching for MobileNetV3");
  assert.equal(r.paper.authors[0], "Andrew Howard");
  assert.equal(r.paper.authors.length, 12);
  assert.match(r.paper.abstract, /^We present the next generation of MobileNets/);
});

test("Papers with Code method page is not a paper page", () => {
  const r = X.extractPage(loadPage("paperswithcode/method-vae.html"), "https://paperswithcode.com/method/vae");
  assert.equal(r.paper, null);
  assert.notEqual(r.kind, "paper");
  const pwc = r.entries.filter((e) => e.id.startsWith("pwc:"));
  assert.deepEqual(pwc.map((e) => e.id), ["pwc:auto-encoding-variational-bayes"], "exactly one /paper/<slug> link");
  assert.equal(pwc[0].title, "Auto-Encoding Variational Bayes");
});

test("Papers with Code home page: 9 distinct paper links, titled from their headings", () => {
  const r = X.extractPage(loadPage("paperswithcode/home-trending-page0-2023-10-01.html"), "https://paperswithcode.com/?page=0");
  assert.equal(r.paper, null);
  assert.deepEqual(r.entries.map((e) => e.url.replace("https://paperswithcode.com/paper/", "")), [
    "cgce-a-chinese-generative-chat-evaluation", "metric3d-towards-zero-shot-metric-3d", "mmicl-empowering-vision-language-model-with",
    "flashattention-2-faster-attention-with-better", "is-chatgpt-good-at-search-investigating-large", "envpool-a-highly-parallel-reinforcement",
    "lima-less-is-more-for-alignment", "flexkbqa-a-flexible-llm-powered-framework-for", "gpt-neox-20b-an-open-source-autoregressive-1"]);
  assert.equal(r.entries[0].title, "CGCE: A Chinese Generative Chat Evaluation Benchmark for General and Financial Domains");
  assert.equal(r.entries[6].title, "LIMA: Less Is More for Alignment");
});

test("Google Scholar cluster view: one result 'Deep learning', no page paper", () => {
  const r = X.extractPage(loadPage("google-scholar/cluster-5362332738201102290-deep-learning.html"),
    "https://scholar.google.co.jp/scholar?hl=en&cluster=5362332738201102290&num=1");
  assert.equal(r.paper, null);
  assert.equal(r.entries.length, 1);
  assert.equal(r.entries[0].title, "Deep learning");
  assert.equal(r.entries[0].link, "http://www.nature.com/nature/journal/v521/n7553/abs/nature14539.html");
  assert.equal(r.entries[0].id, undefined, "a Nature link has no canonical id");
  assert.deepEqual(JSON.parse(JSON.stringify(r.entries[0])), { title: "Deep learning" }, "the raw link is never serialised");
});

test("Google Scholar results: 10 results, first is an unlinked [CITATION], titles as shown", () => {
  const r = X.extractPage(loadPage("google-scholar/results-geology-olympus-range-2020.html"), "https://scholar.google.com/scholar?q=Geology");
  assert.equal(r.paper, null);
  assert.equal(r.kind, "search");
  assert.equal(r.entries.length, 10);
  assert.equal(r.entries[0].title, "Geology of the Olympus Range Area, Southern Victoria Land");
  assert.equal(r.entries[0].link, undefined);
  assert.equal(r.entries[1].title, "Plutonic rocks from the Cape Roberts hinterland: Wilson piedmont glacier, southern Victoria land, Antarctica");
  assert.ok(r.entries[4].title.startsWith("… erosion, uplift and unroofing of the Transantarctic Mountains deduced from sandstone detrital modes in CRP-3 drillcore, Victoria Land Basin, Antarctica"));
  assert.equal(r.entries[9].title, "Surficial geology and geomorphology of the western Olympus Range, Antarctica: Implications for ice-sheet history");
  assert.ok(r.entries.every((e) => e.id === undefined && e.url === undefined), "none links to arXiv");
});

test("Google Scholar robot check: no paper, no results, no crash", () => {
  const doc = loadPage("google-scholar/robot-check-bull-pass-2020.html");
  const r = X.extractPage(doc, "https://scholar.google.com/scholar?q=Geology+of+the+Bull+Pass");
  assert.equal(r.paper, null);
  assert.deepEqual(r.entries, []);
  for (const a of doc.querySelectorAll("a[href]")) assert.equal(X.paperForLink(a, doc, "https://scholar.google.com/scholar?q=x"), null);
});

test("pages of unsupported hosts yield nothing", () => {
  const r = X.extractPage(loadPage("arxiv/abs-2004.10162.html"), "https://example.org/abs/2004.10162");
  assert.deepEqual(r, { site: null, kind: "other", paper: null, entries: [] });
});

test("paper refs come from PaperId and keep nothing of the link but the id", () => {
  assert.deepEqual(X.paperRef("https://openreview.net/forum?id=abcDEF123&referrer=%5BHomepage%5D"), { id: "openreview:abcDEF123", url: "https://openreview.net/forum?id=abcDEF123" });
  assert.deepEqual(X.paperRef("https://aclanthology.org/2023.acl-long.1.pdf"), { id: "acl:2023.acl-long.1", url: "https://aclanthology.org/2023.acl-long.1/" });
  assert.deepEqual(X.paperRef("/paper/lima-less-is-more-for-alignment#code", "https://paperswithcode.com/"), { id: "pwc:lima-less-is-more-for-alignment", url: "https://paperswithcode.com/paper/lima-less-is-more-for-alignment" });
  assert.deepEqual(X.paperRef("https://arxiv.org/pdf/2401.12345v3.pdf?download=1"), { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345" });
  assert.deepEqual(X.paperRef("https://huggingface.co/papers/2401.12345"), { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345" });
  assert.equal(X.paperRef("javascript:alert(1)", "https://arxiv.org/"), null);
  assert.equal(X.paperRef("https://arxiv.org/list/cs/new"), null);
});

test("every canonical id in the shared vectors gets a canonical URL that maps back to it", () => {
  const fs = require("node:fs");
  const { VECTORS } = require("./helpers.js");
  const vectors = JSON.parse(fs.readFileSync(VECTORS, "utf8"));
  let checked = 0;
  for (const c of vectors.canonical) {
    if (!c.expected) continue;
    const url = X.canonicalUrl(c.expected);
    assert.ok(url, `no URL for ${c.expected}`);
    assert.equal(globalThis.PaperId.canonicalPaperId(url), c.expected, url);
    checked++;
  }
  assert.ok(checked > 10);
});

/* Sites without a saved page in the shared set: small hand-written pages in their real markup
 * shape (tag names, meta tags), to pin the page-paper rules. */
function html(body, head = "") {
  const { DOMParser } = require("linkedom");
  return new DOMParser().parseFromString(`<!doctype html><html><head>${head}</head><body>${body}</body></html>`, "text/html");
}

test("Hugging Face paper page: id from the address, title from the heading", () => {
  const doc = html('<main><h1 class="text-2xl">  Attention Is\n All You Need </h1></main>', '<meta property="og:title" content="Paper page - Attention Is All You Need">');
  const r = X.extractPage(doc, "https://huggingface.co/papers/1706.03762?utm_source=x");
  assert.deepEqual(r.paper, { id: "arxiv:1706.03762", url: "https://arxiv.org/abs/1706.03762", title: "Attention Is All You Need" });
  assert.equal(X.extractPage(html("<h1>Daily Papers</h1>"), "https://huggingface.co/papers").paper, null);
});

test("Hugging Face daily list: clicks carry the card title", () => {
  const doc = html('<article><a href="/papers/2401.12345"><img></a><h3><a href="/papers/2401.12345">A Great Paper</a></h3></article>');
  const r = X.extractPage(doc, "https://huggingface.co/papers");
  assert.equal(r.kind, "listing");
  assert.deepEqual(r.entries, [{ id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345", title: "A Great Paper" }]);
  const imgLink = doc.querySelector("a");
  assert.equal(X.paperForLink(imgLink, doc, "https://huggingface.co/papers").title, "A Great Paper");
});

test("OpenReview forum page: citation meta, id openreview:<forum>", () => {
  const head = '<meta name="citation_title" content="Deep Things"><meta name="citation_author" content="Ada Lovelace"><meta name="citation_abstract" content="We do deep things.">';
  const r = X.extractPage(html("<h2>Deep Things</h2>", head), "https://openreview.net/forum?id=rJXMpikCZ&noteId=abc");
  assert.deepEqual(r.paper, { id: "openreview:rJXMpikCZ", url: "https://openreview.net/forum?id=rJXMpikCZ", title: "Deep Things", authors: ["Ada Lovelace"], abstract: "We do deep things." });
  assert.equal(X.extractPage(html("<h2>Venue</h2>"), "https://openreview.net/group?id=ICLR.cc").paper, null);
});

test("ACL Anthology paper page: acl id, abstract from the page", () => {
  const head = '<meta name="citation_title" content="A Parser"><meta name="citation_author" content="Noam Chomsky">';
  const r = X.extractPage(html('<div class="acl-abstract"><h5>Abstract</h5><span>We parse.</span></div>', head), "https://aclanthology.org/2020.acl-main.1/");
  assert.deepEqual(r.paper, { id: "acl:2020.acl-main.1", url: "https://aclanthology.org/2020.acl-main.1/", title: "A Parser", authors: ["Noam Chomsky"], abstract: "We parse." });
});

test("alphaXiv and arXiv HTML pages", () => {
  const ax = X.extractPage(html("<h1>Some Paper</h1>", '<meta property="og:title" content="Some Paper | alphaXiv">'), "https://www.alphaxiv.org/abs/2401.12345v2");
  assert.deepEqual(ax.paper, { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345", title: "Some Paper" });
  const ltx = X.extractPage(html('<h1 class="ltx_title ltx_title_document">Title in LaTeXML</h1>'), "https://arxiv.org/html/2401.12345v1");
  assert.deepEqual(ltx.paper, { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345", title: "Title in LaTeXML" });
  const pdf = X.extractPage(html('<embed type="application/pdf">'), "https://arxiv.org/pdf/2401.12345v1");
  assert.deepEqual(pdf.paper, { id: "arxiv:2401.12345", url: "https://arxiv.org/abs/2401.12345" });
});

test("over-long fields are cut to the server's limits", () => {
  const head = `<meta name="citation_title" content="${"T".repeat(1500)}">` +
    Array.from({ length: 120 }, (_, i) => `<meta name="citation_author" content="A${i}${"x".repeat(400)}">`).join("");
  const r = X.extractPage(html("", head), "https://arxiv.org/abs/2401.12345");
  assert.equal(r.paper.title.length, 1000);
  assert.equal(r.paper.authors.length, 100);
  assert.ok(r.paper.authors.every((a) => a.length === 300));
});
