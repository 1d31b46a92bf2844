/*
 * background.js: the service worker (Chromium) / event page (Firefox).
 *
 * It owns delivery of the queue that content scripts write to chrome.storage.local, the one API
 * client, registration, and the privileged actions of the extension pages. It keeps no state in
 * globals: everything lives in storage (PfStore), so the worker may be stopped at any moment.
 * Every listener is registered synchronously at the top level, so an event that wakes a stopped
 * worker (a storage change, an alarm, a message) finds its listener.
 */
/* global importScripts, PfStore, PfQueue, PfApi, PfExtract */
if (typeof importScripts === "function") {
  importScripts("paperid.js", "storage.js", "queue.js", "api.js", "extract.js");
}

const FLUSH_ALARM = "pf-flush"; // periodic safety net
const RETRY_ALARM = "pf-retry"; // one-shot, at the backoff time
const FLUSH_PERIOD_MIN = 1;

/** Run `fn` alone: the storage queue must not be read by two passes at once. */
function exclusive(name, fn) {
  if (globalThis.navigator && navigator.locks && navigator.locks.request) return navigator.locks.request(name, fn);
  // Firefox before Web Locks in workers, and Node tests: a chain kept on the function object.
  const chains = (exclusive.chains ||= new Map());
  const run = (chains.get(name) || Promise.resolve()).then(fn, fn);
  chains.set(name, run.catch(() => {}));
  return run;
}

async function apiClient() {
  const auth = await PfStore.getAuth();
  if (!auth || !auth.token) return null;
  return PfApi.client(auth.server, auth.token);
}

/** Deliver the queue; `force` is the retry alarm itself, which ignores the pending backoff. */
function flush(force = false) {
  return exclusive("pf-flush", async () => {
    const api = await apiClient();
    if (!api) return { sent: 0, remaining: (await PfStore.listQueue()).length };
    const result = await PfQueue.flush({ store: PfStore, post: api.postEvents, force });
    if (result.retryAt) await chrome.alarms.create(RETRY_ALARM, { when: result.retryAt });
    else if (!result.remaining) await chrome.alarms.clear(RETRY_ALARM);
    return result;
  });
}

/**
 * Make the alarms right when the worker starts: the periodic flush if it is missing (re-creating
 * it would restart its period at every wake), and the retry of a pending backoff always, at the
 * time the backoff in storage says. An alarm carried over from an earlier browser session may be
 * missing, or present and late or never firing (Chrome makes no promise about alarms across a
 * restart); a one-shot alarm set again at the same time costs nothing.
 */
async function ensureAlarms() {
  if (!(await chrome.alarms.get(FLUSH_ALARM))) {
    await chrome.alarms.create(FLUSH_ALARM, { periodInMinutes: FLUSH_PERIOD_MIN });
  }
  const backoff = await PfStore.getBackoff();
  if (backoff.nextAt) {
    await chrome.alarms.create(RETRY_ALARM, { when: Math.max(backoff.nextAt, Date.now() + 1000) });
  }
}

function isExtensionPage(sender) {
  return sender.id === chrome.runtime.id && typeof sender.url === "string" &&
    sender.url.startsWith(chrome.runtime.getURL(""));
}

function newEvent(type, paper, site) {
  return {
    id: PfStore.newEventId(),
    type,
    paper,
    ts: Math.floor(Date.now() / 1000),
    site,
  };
}

async function register(server) {
  const normalised = PfStore.normaliseServer(server);
  await PfStore.updateSettings({ server: normalised });
  const body = await PfApi.client(normalised, null).register();
  if (!body || !body.token) throw new Error("the server answered without a token");
  await PfStore.setConsentAndAuth(
    { given: true, at: Math.floor(Date.now() / 1000), version: 1 },
    { server: normalised, userId: body.user_id, token: body.token },
  );
  return { userId: body.user_id };
}

async function status() {
  const [state, stats, backoff, queue] = await Promise.all([
    PfStore.getState(), PfStore.getStats(), PfStore.getBackoff(), PfStore.listQueue(),
  ]);
  return {
    settings: state.settings,
    consented: Boolean(state.consent && state.consent.given),
    registered: Boolean(state.auth && state.auth.token),
    server: state.auth ? state.auth.server : state.settings.server,
    queued: queue.length,
    stats,
    nextRetryAt: backoff.nextAt > Date.now() ? backoff.nextAt : null,
  };
}

async function withApi(fn) {
  const api = await apiClient();
  if (!api) return { ok: false, error: "unregistered" };
  try {
    return { ok: true, data: await fn(api) };
  } catch (err) {
    return { ok: false, error: err.kind || "error", status: err.status || 0, detail: err.message };
  }
}

/* Message handlers: content scripts may only nudge; everything else is for extension pages. */
const HANDLERS = {
  nudge: { privileged: false, run: () => flush().then(() => ({ ok: true })) },
  flushNow: { privileged: true, run: () => flush(true).then((r) => ({ ok: true, data: r })) },
  status: { privileged: true, run: async () => ({ ok: true, data: await status() }) },
  register: {
    privileged: true,
    run: async (msg) => {
      try {
        return { ok: true, data: await register(msg.server) };
      } catch (err) {
        return { ok: false, error: err.kind || "error", status: err.status || 0, detail: err.message };
      }
    },
  },
  recommendations: { privileged: true, run: (msg) => withApi((api) => api.recommendations(msg.limit || 20)) },
  trending: { privileged: true, run: (msg) => withApi((api) => api.trending(msg.limit || 20, msg.offset || 0)) },
  history: { privileged: true, run: () => withApi((api) => api.history()) },
  dismiss: {
    privileged: true,
    run: async (msg) => {
      const ref = PfExtract.paperRef(msg.paper && msg.paper.url ? msg.paper.url : "", undefined);
      const id = (msg.paper && PaperId.canonicalPaperId(msg.paper.id || "")) || (ref && ref.id);
      if (!id) return { ok: false, error: "invalid", detail: "no paper id" };
      const paper = { id, url: PfExtract.canonicalUrl(id) };
      if (msg.paper.title) paper.title = String(msg.paper.title).slice(0, 1000);
      if (!paper.url) delete paper.url;
      await PfStore.enqueue(newEvent("dismiss", paper, "paperfeed"));
      await flush();
      return { ok: true };
    },
  },
  emailStatus: { privileged: true, run: () => withApi((api) => api.emailStatus()) },
  subscribeEmail: {
    privileged: true,
    run: (msg) => withApi((api) => api.subscribeEmail(String(msg.address || "").slice(0, 254))),
  },
  unsubscribeEmail: { privileged: true, run: () => withApi((api) => api.unsubscribeEmail()) },
  exportData: {
    privileged: true,
    run: async () => {
      await flush(true).catch(() => {});
      return withApi((api) => api.exportData());
    },
  },
  deleteData: {
    privileged: true,
    run: async () => {
      const res = await withApi((api) => api.deleteMe());
      if (res.ok || res.error === "unregistered") {
        await exclusive("pf-flush", () => PfStore.clearUserState());
        await chrome.alarms.clear(RETRY_ALARM);
        return { ok: true };
      }
      return res;
    },
  },
};

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  const handler = msg && typeof msg.type === "string" && Object.hasOwn(HANDLERS, msg.type) ? HANDLERS[msg.type] : null;
  if (!handler || sender.id !== chrome.runtime.id || (handler.privileged && !isExtensionPage(sender))) {
    sendResponse({ ok: false, error: "forbidden" });
    return false;
  }
  handler.run(msg, sender).then(sendResponse, (err) => sendResponse({ ok: false, error: "error", detail: String(err) }));
  return true; // async response
});

// A content script's write is the wake-up call: even if its nudge message was lost because the
// page navigated away while the worker was stopped, the storage change still reaches us.
chrome.storage.onChanged.addListener((changes, areaName) => {
  if (areaName !== "local") return;
  if (Object.keys(changes).some((k) => k.startsWith(PfStore.QUEUE_PREFIX) && changes[k].newValue)) flush();
});

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === RETRY_ALARM) flush(true);
  else if (alarm.name === FLUSH_ALARM) flush();
});

chrome.runtime.onInstalled.addListener(async (details) => {
  await ensureAlarms();
  if (details.reason === "install") {
    const { consent } = await chrome.storage.local.get("consent");
    if (!consent) await chrome.tabs.create({ url: chrome.runtime.getURL("pages/welcome.html") });
  }
});

// A new browser session delivers its queue at once: a backoff left from the last session was
// about failures then (the server down, or no network), and waiting it out (or for an alarm
// that may not have survived the restart) only delays what the user read. (The alarms were set
// by the worker's start, below, which runs before any event reaches it.)
chrome.runtime.onStartup.addListener(() => {
  flush(true);
});

// Every start of the worker is a chance to deliver: a queue with no backoff pending (one that
// ran out while the browser was closed, say) goes now rather than at the next periodic alarm.
ensureAlarms().catch(() => {}).then(() => flush());
