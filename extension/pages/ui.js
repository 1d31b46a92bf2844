/*
 * ui.js: helpers shared by the extension pages (popup, full-page feed, options, welcome).
 * Every piece of server text goes into the DOM through textContent, never innerHTML, so a
 * hostile title or abstract renders as text.
 */
/* global PaperId, PfExtract, PfStore */
(function (root) {
  "use strict";

  async function send(type, extra = {}) {
    try {
      const res = await chrome.runtime.sendMessage({ type, ...extra });
      return res || { ok: false, error: "error", detail: "no answer from the extension" };
    } catch (err) {
      return { ok: false, error: "error", detail: String(err && err.message ? err.message : err) };
    }
  }

  /** el("a", {class: "x", text: "t", href: "..."}, child, ...) */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function safeHttpUrl(value) {
    try {
      const u = new URL(String(value));
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch {
      return null;
    }
  }

  /** Where a catalogue paper links to: its canonical URL, from its id when possible. */
  function paperHref(paper) {
    const id = paper && PaperId.canonicalPaperId(String(paper.id || ""));
    return (id && PfExtract.canonicalUrl(id)) || safeHttpUrl(paper && paper.url);
  }

  function authorLine(authors, max = 6) {
    if (!Array.isArray(authors) || !authors.length) return "";
    const names = authors.slice(0, max).map(String);
    return authors.length > max ? `${names.join(", ")} et al.` : names.join(", ");
  }

  /** A plain sentence for a failed call, for the pages' notice areas. */
  function problemText(res, server) {
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      return { kind: "offline", text: "You're offline. What you read is kept and sent when you're back online." };
    }
    switch (res.error) {
      case "unregistered":
        return { kind: "unregistered", text: "Paperfeed is off: nothing is collected until you turn it on." };
      case "unreachable":
        return { kind: "unreachable", text: `Can't reach the Paperfeed server${server ? ` at ${server}` : ""}. What you read is kept and sent later.` };
      case "unauthorized":
        return { kind: "unauthorized", text: "The server no longer knows this browser. Register again in the options." };
      default:
        return { kind: "error", text: `The server answered with an error${res.status ? ` (HTTP ${res.status})` : ""}${res.detail ? `: ${res.detail}` : ""}.` };
    }
  }

  /**
   * Ask for the host permission of a server address; call it first thing in a click handler
   * (Firefox grants only requests made synchronously in the user gesture). Already granted
   * origins resolve to true without a prompt; Firefox treats even the manifest's host
   * permissions as grantable later, so the request is made for those too.
   */
  async function requestServerPermission(server) {
    const pattern = PfStore.originPattern(PfStore.normaliseServer(server));
    try {
      return await chrome.permissions.request({ origins: [pattern] });
    } catch {
      return (chrome.runtime.getManifest().host_permissions || []).includes(pattern);
    }
  }

  function downloadJson(data, filename) {
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  root.PfUi = { send, el, safeHttpUrl, paperHref, authorLine, problemText, requestServerPermission, downloadJson };
})(globalThis);
