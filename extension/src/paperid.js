/**
 * Canonical paper ids: one namespaced string per paper, from any URL or id a user may hold.
 *
 * The JavaScript twin of recommender/paperid.py. Both are held to the same cases in
 * tests/vectors/paper_ids.json, so a change here needs the same change there. Canonical forms:
 *
 *   arxiv:2401.12345      arxiv:hep-th/9901001     doi:10.1145/3292500.3330701
 *   openreview:rJXMpikCZ  acl:2020.acl-main.1      acl:P19-1001     pwc:searching-for-mobilenetv3
 *
 * A plain script with no build step: importScripts() in the MV3 service worker, a content script
 * (global PaperId), or require() in Node. Inputs are bounded to MAX_INPUT_LENGTH characters and
 * must be printable ASCII once surrounding whitespace is stripped; every regular expression is
 * linear. Nothing throws: anything not recognised gives null.
 *
 * URL parsing uses the WHATWG URL class, which (unlike Python's urlsplit) resolves "." and ".."
 * segments, decodes percent escapes in host names and rewrites backslashes; inputs where those
 * differences could matter are refused before parsing, so both languages agree.
 */
(function (root) {
  "use strict";

  const MAX_INPUT_LENGTH = 2048;

  const ARXIV_HOSTS = ["arxiv.org", "www.arxiv.org", "export.arxiv.org", "browse.arxiv.org"];
  const HF_HOSTS = ["huggingface.co", "www.huggingface.co", "hf.co"];
  const ALPHAXIV_HOSTS = ["alphaxiv.org", "www.alphaxiv.org"];
  const AR5IV_HOSTS = ["ar5iv.org", "www.ar5iv.org", "ar5iv.labs.arxiv.org"];
  const DOI_HOSTS = ["doi.org", "dx.doi.org", "www.doi.org"];
  const OPENREVIEW_HOSTS = ["openreview.net", "www.openreview.net"];
  const ACL_HOSTS = ["aclanthology.org", "www.aclanthology.org"];
  const ACLWEB_HOSTS = ["aclweb.org", "www.aclweb.org"];
  const PWC_HOSTS = ["paperswithcode.com", "www.paperswithcode.com"];

  const SUPPORTED_HOSTS = Object.freeze([
    ...ARXIV_HOSTS,
    ...HF_HOSTS,
    ...ALPHAXIV_HOSTS,
    ...AR5IV_HOSTS,
    ...DOI_HOSTS,
    ...OPENREVIEW_HOSTS,
    ...ACL_HOSTS,
    ...ACLWEB_HOSTS,
    ...PWC_HOSTS,
  ]);

  // Archives that minted old-style ids (1991 to 2007-03); q-fin and stat began after.
  const OLD_ARCHIVES = new Set([
    "acc-phys", "adap-org", "alg-geom", "ao-sci", "astro-ph", "atom-ph", "bayes-an",
    "chao-dyn", "chem-ph", "cmp-lg", "comp-gas", "cond-mat", "cs", "dg-ga", "funct-an",
    "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math", "math-ph", "mtrl-th", "nlin",
    "nucl-ex", "nucl-th", "patt-sol", "physics", "plasm-ph", "q-alg", "q-bio", "quant-ph",
    "solv-int", "supr-con",
  ]);

  const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
  const WHITESPACE = " \t\n\r\f\v";
  const NEW_ARXIV = /^([0-9]{2})([0-9]{2})\.([0-9]{4,5})(?:v[1-9][0-9]*)?$/;
  const OLD_ARXIV =
    /^([A-Za-z]+(?:-[A-Za-z]+)?)(?:\.[A-Za-z-]{2,})?\/([0-9]{2})([0-9]{2})([0-9]{3})(?:v[1-9][0-9]*)?$/;
  const DOI = /^10\.[0-9]{4,9}(?:\.[0-9]+)*\/[\x21-\x7e]+$/;
  const OPENREVIEW_ID = /^[A-Za-z0-9_-]{1,64}$/;
  const ACL_ID =
    /^(?:[A-Z][0-9]{2}-[0-9]{4}|20[0-9]{2}\.[a-z0-9]+(?:-[a-z0-9]+)*\.(?:0|[1-9][0-9]{0,3}))$/;
  const PWC_SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
  const NAMESPACE = /^(arxiv|doi|openreview|acl|pwc):/i;
  const HTTP_URL = /^https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{0,5})?(?:[/?#]|$)/i;
  const HTTP_SCHEME = /^https?:\/\//i;
  const BARE_HOST = /^[A-Za-z0-9.-]+(?=[/?#]|$)/;
  const PERCENT = /%([0-9A-Fa-f]{2})/g;
  const DOT_SEGMENTS = new Set([".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"]);
  const ARXIV_URL_PREFIXES = new Set(["abs", "pdf", "html", "format", "ps", "src"]);

  /**
   * Return the canonical, namespaced id of the paper that `value` names, or null.
   * Accepts a URL (scheme optional for supported hosts), a bare id (2401.12345v2,
   * arXiv:hep-th/9901001, 10.1145/...) or a namespaced id (openreview:rJXMpikCZ).
   * @param {unknown} value
   * @returns {string | null}
   */
  function canonicalPaperId(value) {
    try {
      const text = clean(value);
      if (text === null) return null;
      if (HTTP_SCHEME.test(text)) return fromUrl(text);
      const namespaced = NAMESPACE.exec(text);
      if (namespaced) {
        return fromNamespaced(namespaced[1].toLowerCase(), text.slice(namespaced[0].length));
      }
      if (bareSupportedHost(text)) return fromUrl("https://" + text);
      return fromArxivId(text) || fromDoi(text);
    } catch (_error) {
      return null;
    }
  }

  /**
   * Tell whether `url` is the URL of one paper's page (or PDF) on a supported host.
   * @param {unknown} url
   * @returns {boolean}
   */
  function isPaperUrl(url) {
    try {
      const text = clean(url);
      if (text === null) return false;
      if (HTTP_SCHEME.test(text)) return fromUrl(text) !== null;
      if (bareSupportedHost(text)) return fromUrl("https://" + text) !== null;
      return false;
    } catch (_error) {
      return false;
    }
  }

  function clean(value) {
    if (typeof value !== "string" || value.length > MAX_INPUT_LENGTH) return null;
    let start = 0;
    let end = value.length;
    while (start < end && WHITESPACE.includes(value[start])) start += 1;
    while (end > start && WHITESPACE.includes(value[end - 1])) end -= 1;
    const text = value.slice(start, end);
    if (!text || !PRINTABLE_ASCII.test(text) || text.includes("\\")) return null;
    return text;
  }

  function bareSupportedHost(text) {
    const host = BARE_HOST.exec(text);
    return host !== null && SUPPORTED_HOSTS.includes(host[0].toLowerCase());
  }

  function fromNamespaced(namespace, rest) {
    if (namespace === "arxiv") return fromArxivId(rest);
    if (namespace === "doi") return fromDoi(rest);
    if (namespace === "openreview") return OPENREVIEW_ID.test(rest) ? "openreview:" + rest : null;
    if (namespace === "acl") return ACL_ID.test(rest) ? "acl:" + rest : null;
    return PWC_SLUG.test(rest) ? "pwc:" + rest : null;
  }

  function fromArxivId(text) {
    const neu = NEW_ARXIV.exec(text);
    if (neu) {
      const yy = Number(neu[1]);
      const mm = Number(neu[2]);
      const seq = neu[3];
      const digits = yy < 15 ? 4 : 5;
      if (mm < 1 || mm > 12 || yy < 7 || (yy === 7 && mm < 4)) return null;
      if (seq.length !== digits || Number(seq) === 0) return null;
      return "arxiv:" + neu[1] + neu[2] + "." + seq;
    }
    const old = OLD_ARXIV.exec(text);
    if (old) {
      const archive = old[1].toLowerCase();
      const yy = Number(old[2]);
      const mm = Number(old[3]);
      const year = yy >= 91 ? 1900 + yy : 2000 + yy;
      if (!OLD_ARCHIVES.has(archive) || mm < 1 || mm > 12) return null;
      if (year > 2007 || (year === 2007 && mm > 3) || Number(old[4]) === 0) return null;
      return "arxiv:" + archive + "/" + old[2] + old[3] + old[4];
    }
    return null;
  }

  function fromDoi(text) {
    if (!DOI.test(text)) return null;
    const doi = text.toLowerCase();
    if (doi.startsWith("10.48550/")) {
      const rest = text.slice("10.48550/".length);
      return rest.slice(0, 6).toLowerCase() === "arxiv." ? fromArxivId(rest.slice(6)) : null;
    }
    return "doi:" + doi;
  }

  function percentDecodeAscii(text) {
    for (const match of text.matchAll(PERCENT)) {
      if (parseInt(match[1], 16) > 0x7f) return null;
    }
    const decoded = text.replace(PERCENT, (_m, hex) => String.fromCharCode(parseInt(hex, 16)));
    return PRINTABLE_ASCII.test(decoded) ? decoded : null;
  }

  function queryParam(query, name) {
    for (const pair of query.split("&")) {
      const sep = pair.indexOf("=");
      if (sep !== -1 && pair.slice(0, sep) === name) {
        const value = pair.slice(sep + 1);
        return value ? percentDecodeAscii(value) : null;
      }
    }
    return null;
  }

  function fromUrl(text) {
    if (!HTTP_URL.test(text)) return null;
    const afterScheme = text.slice(text.indexOf("://") + 3);
    let authorityEnd = afterScheme.length;
    for (const stop of "/?#") {
      const index = afterScheme.indexOf(stop);
      if (index !== -1) authorityEnd = Math.min(authorityEnd, index);
    }
    const rawPath = afterScheme.slice(authorityEnd).split("#")[0].split("?")[0];
    // URL resolves "." and ".." segments; refuse them rather than differ from the Python twin.
    if (rawPath.split("/").some((segment) => DOT_SEGMENTS.has(segment.toLowerCase()))) {
      return null;
    }
    let url;
    try {
      url = new URL(text);
    } catch (_error) {
      return null;
    }
    if (url.port !== "") return null; // URL drops the scheme's default port
    const host = url.hostname.toLowerCase();
    const query = url.search.startsWith("?") ? url.search.slice(1) : url.search;
    return fromHostPath(host, url.pathname || "/", query);
  }

  function fromHostPath(host, path, query) {
    if (ARXIV_HOSTS.includes(host)) return fromArxivPath(path, query);
    if (HF_HOSTS.includes(host)) return arxivAfter(path, ["papers"], false);
    if (ALPHAXIV_HOSTS.includes(host)) return arxivAfter(path, ["abs", "overview"], false);
    if (AR5IV_HOSTS.includes(host)) return arxivAfter(path, ["abs", "html"], true);
    if (DOI_HOSTS.includes(host)) {
      const decoded = percentDecodeAscii(path.slice(1));
      return decoded ? fromDoi(decoded) : null;
    }
    if (OPENREVIEW_HOSTS.includes(host)) {
      if (path !== "/forum" && path !== "/pdf") return null;
      const forum = queryParam(query, "id");
      return forum ? fromNamespaced("openreview", forum) : null;
    }
    if (ACL_HOSTS.includes(host)) return aclFromPath(path.slice(1));
    if (ACLWEB_HOSTS.includes(host)) {
      if (!path.startsWith("/anthology/")) return null;
      return aclFromPath(path.slice("/anthology/".length));
    }
    if (PWC_HOSTS.includes(host) && path.startsWith("/paper/")) {
      return fromNamespaced("pwc", removeSuffix(path.slice("/paper/".length), "/"));
    }
    return null;
  }

  function fromArxivPath(path, query) {
    if (path === "/abs" || path === "/abs/") {
      const legacy = queryParam(query, "id");
      return legacy ? fromArxivId(legacy) : null;
    }
    const segments = path.split("/");
    const kind = segments.length > 2 ? segments[1] : "";
    if (!ARXIV_URL_PREFIXES.has(kind)) return null;
    let rest = path.slice(kind.length + 2);
    if (kind === "html") return arxivWithSubpath(rest);
    if (kind === "pdf") rest = removeSuffix(rest, ".pdf");
    return fromArxivId(removeSuffix(rest, "/"));
  }

  function arxivAfter(path, kinds, subpath) {
    const segments = path.split("/");
    if (segments.length < 3 || !kinds.includes(segments[1])) return null;
    const rest = path.slice(segments[1].length + 2);
    return subpath ? arxivWithSubpath(rest) : fromArxivId(removeSuffix(rest, "/"));
  }

  function arxivWithSubpath(rest) {
    const segments = rest.split("/");
    return (
      fromArxivId(segments[0]) ||
      (segments.length > 1 ? fromArxivId(segments.slice(0, 2).join("/")) : null)
    );
  }

  function aclFromPath(rest) {
    const id = rest.endsWith(".pdf") ? rest.slice(0, -".pdf".length) : removeSuffix(rest, "/");
    return fromNamespaced("acl", id);
  }

  function removeSuffix(text, suffix) {
    return text.endsWith(suffix) ? text.slice(0, text.length - suffix.length) : text;
  }

  const api = { canonicalPaperId, isPaperUrl, SUPPORTED_HOSTS, MAX_INPUT_LENGTH };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.PaperId = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
