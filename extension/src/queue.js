/*
 * queue.js: delivery of queued events to POST /v1/events, so that nothing is lost and nothing
 * counts twice.
 *
 * The pure decisions (how to treat a status, Retry-After, backoff, the cap) are plain functions;
 * `flush` runs one delivery pass with its storage, HTTP client and clock passed in, so the same
 * code runs in the service worker and in Node tests with fakes.
 *
 * Rules: events leave storage only after a 2xx (the server de-duplicates by event UUID, so a
 * resend after a crash is harmless); network errors, 408, 429 and 5xx keep the events and
 * schedule a retry with exponential backoff, or exactly what Retry-After asks; 401 keeps them
 * too (the user can re-register); 400/413/422 halve the batch until the one bad event is alone,
 * then drop it and count it; any other 4xx drops the batch and counts it; past the cap the
 * oldest events are dropped and counted.
 */
(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.PfQueue = api;
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  const MAX_BATCH = 500;
  const BASE_DELAY_MS = 5000;
  const MAX_DELAY_MS = 30 * 60 * 1000;
  const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

  /** What to do with a batch after an HTTP status (0 = network error). */
  function classify(status) {
    if (status >= 200 && status < 300) return "sent";
    if (status === 0 || status === 408 || status === 429 || status >= 500) return "retry";
    if (status === 401) return "retry";
    if (status === 400 || status === 413 || status === 422) return "split";
    return "drop";
  }

  /**
   * Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date. Returns milliseconds
   * to wait (>= 0) or null when absent or malformed.
   */
  function parseRetryAfter(value, nowMs) {
    if (value === null || value === undefined) return null;
    const text = String(value).trim();
    if (text === "") return null;
    if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
    if (!/[a-z]/i.test(text)) return null;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
  }

  /** Exponential backoff with +-20% jitter; attempt counts from 1. */
  function backoffDelay(attempt, random = Math.random) {
    const raw = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempt - 1));
    return Math.round(raw * (0.8 + 0.4 * random()));
  }

  /** The server's Retry-After wins; otherwise exponential backoff. */
  function retryDelay(attempt, retryAfterMs, random = Math.random) {
    if (retryAfterMs !== null && retryAfterMs !== undefined) return retryAfterMs;
    return backoffDelay(attempt, random);
  }

  /** Split sorted queue keys into those to keep and the oldest ones over the cap. */
  function enforceCap(sortedKeys, cap) {
    const over = Math.max(0, sortedKeys.length - cap);
    return { drop: sortedKeys.slice(0, over), keep: sortedKeys.slice(over) };
  }

  /**
   * One delivery pass.
   * deps: {store (PfStore-like), post(events) -> {status, retryAfter}, now() -> ms, random(),
   *        force: bool (ignore a pending backoff: the retry alarm itself), cap, batchSize}
   * Returns {sent, dropped4xx, droppedCap, retryAt (ms) | null, remaining}.
   */
  async function flush(deps) {
    const { store, post, now = Date.now, random = Math.random, force = false } = deps;
    const batchSize = Math.min(deps.batchSize || MAX_BATCH, MAX_BATCH);
    const result = { sent: 0, dropped4xx: 0, droppedCap: 0, retryAt: null, remaining: 0 };

    const cap = deps.cap ?? (await store.getSettings()).queueCap;
    let queue = await store.listQueue();
    const { drop } = enforceCap(queue.map((q) => q.key), cap);
    if (drop.length) {
      await store.removeKeys(drop);
      await store.updateStats({ droppedCap: drop.length });
      result.droppedCap = drop.length;
      queue = queue.slice(drop.length);
    }

    const backoff = await store.getBackoff();
    if (!force && backoff.nextAt > now()) {
      result.retryAt = backoff.nextAt;
      result.remaining = queue.length;
      return result;
    }

    let size = batchSize;
    while (queue.length) {
      const batch = queue.slice(0, size);
      const { status, retryAfter } = await post(batch.map((q) => q.event));
      const action = classify(status);
      await store.updateStats({ lastAttemptAt: now() });
      if (action === "sent") {
        await store.removeKeys(batch.map((q) => q.key));
        await store.updateStats({ sent: batch.length, lastSentAt: now(), lastError: null });
        await store.setBackoff({ attempt: 0, nextAt: 0 });
        result.sent += batch.length;
        queue = queue.slice(batch.length);
        // a pass may have been triggered while events were still arriving: pick them up too
        if (!queue.length) queue = await store.listQueue();
      } else if (action === "split" && batch.length > 1) {
        size = Math.ceil(batch.length / 2);
      } else if (action === "split" || action === "drop") {
        await store.removeKeys(batch.map((q) => q.key));
        await store.updateStats({ dropped4xx: batch.length, lastError: `HTTP ${status}` });
        result.dropped4xx += batch.length;
        queue = queue.slice(batch.length);
      } else {
        const attempt = backoff.attempt + 1;
        const delay = retryDelay(attempt, parseRetryAfter(retryAfter, now()), random);
        const nextAt = now() + delay;
        await store.setBackoff({ attempt, nextAt });
        await store.updateStats({ lastError: status === 0 ? "network error" : `HTTP ${status}` });
        result.retryAt = nextAt;
        break;
      }
    }
    result.remaining = queue.length;
    return result;
  }

  return {
    MAX_BATCH, BASE_DELAY_MS, MAX_DELAY_MS,
    classify, parseRetryAfter, backoffDelay, retryDelay, enforceCap, flush,
  };
});
