/*
 * api.js: the HTTP client for the Paperfeed server (wire format in docs/extension.md).
 *
 * `postEvents` never throws: it reports {status, retryAfter} with status 0 for a network error,
 * which is what the delivery queue decides on. The read calls throw ApiError, whose `kind` the
 * pages turn into a plain message ("unreachable", "unauthorized", "http").
 */
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.PfApi = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  const TIMEOUT_MS = 15000;

  class ApiError extends Error {
    constructor(kind, status, detail) {
      super(detail || kind);
      this.kind = kind;
      this.status = status;
    }
  }

  function client(server, token, fetchImpl = (...a) => globalThis.fetch(...a)) {
    const base = server.replace(/\/+$/, "");

    async function request(method, path, body) {
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const controller = typeof AbortController === "function" ? new AbortController() : null;
      const timer = controller ? setTimeout(() => controller.abort(), TIMEOUT_MS) : null;
      try {
        return await fetchImpl(`${base}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "omit",
          cache: "no-store",
          referrerPolicy: "no-referrer",
          signal: controller ? controller.signal : undefined,
        });
      } finally {
        if (timer) clearTimeout(timer);
      }
    }

    async function json(method, path, body) {
      let res;
      try {
        res = await request(method, path, body);
      } catch (err) {
        throw new ApiError("unreachable", 0, String(err && err.message ? err.message : err));
      }
      if (res.status === 204) return null;
      let data = null;
      try {
        data = await res.json();
      } catch {
        data = null;
      }
      if (!res.ok) {
        const kind = res.status === 401 ? "unauthorized" : "http";
        const detail = data && (data.detail || data.title);
        throw new ApiError(kind, res.status, detail || `HTTP ${res.status}`);
      }
      return data;
    }

    return {
      async postEvents(events) {
        try {
          const res = await request("POST", "/v1/events", { events });
          return { status: res.status, retryAfter: res.headers.get("Retry-After") };
        } catch {
          return { status: 0, retryAfter: null };
        }
      },
      register: () => json("POST", "/v1/users", {}),
      recommendations: (limit = 20) => json("GET", `/v1/recommendations?limit=${Number(limit)}`),
      trending: (limit = 20, offset = 0) => json("GET", `/v1/trending?limit=${Number(limit)}&offset=${Number(offset)}`),
      history: () => json("GET", "/v1/me/history"),
      exportData: () => json("GET", "/v1/me/export"),
      deleteMe: () => json("DELETE", "/v1/me"),
      emailStatus: () => json("GET", "/v1/me/email"),
      subscribeEmail: (address) => json("POST", "/v1/me/email", { address: String(address) }),
      unsubscribeEmail: () => json("DELETE", "/v1/me/email"),
    };
  }

  return { ApiError, client, TIMEOUT_MS };
});
