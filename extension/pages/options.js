/* options.js: server address, pause, per-site switches, delivery status, export and delete. */
/* global PfUi, PfStore */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const { el, send } = PfUi;
  const SITE_NAMES = {
    arxiv: "arXiv (arxiv.org)", huggingface: "Hugging Face papers", paperswithcode: "Papers with Code",
    openreview: "OpenReview", aclanthology: "ACL Anthology", alphaxiv: "alphaXiv", scholar: "Google Scholar",
  };

  function say(text, kind = "") {
    const box = $("data-status");
    box.hidden = !text;
    box.dataset.kind = kind;
    box.textContent = text || "";
  }

  async function render() {
    const res = await send("status");
    if (!res.ok) return;
    const s = res.data;
    if (document.activeElement !== $("server")) $("server").value = s.settings.server;
    $("account").textContent = s.registered ? `Registered with ${s.server}.` : "";
    $("consent-off").hidden = s.consented && s.registered;
    $("paused").checked = s.settings.paused;
    const box = $("sites");
    if (box.querySelectorAll("input").length === 0) {
      for (const site of PfStore.SITES) {
        box.append(el("label", { class: "switch" },
          el("input", { type: "checkbox", id: `site-${site}`, dataset: { site },
            onchange: (ev) => PfStore.updateSettings({ sites: { [site]: ev.currentTarget.checked } }) }),
          ` ${SITE_NAMES[site] || site}`));
      }
    }
    for (const site of PfStore.SITES) $(`site-${site}`).checked = s.settings.sites[site] !== false;
    $("stat-queued").textContent = String(s.queued);
    $("stat-sent").textContent = String(s.stats.sent);
    $("stat-dropped4xx").textContent = String(s.stats.dropped4xx);
    $("stat-droppedCap").textContent = String(s.stats.droppedCap);
    $("stat-lastError").textContent = s.stats.lastError || "none";
    $("stat-nextRetry").textContent = s.nextRetryAt ? new Date(s.nextRetryAt).toLocaleTimeString() : "-";
    document.body.dataset.loaded = "1";
  }

  $("server-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let server;
    try {
      server = PfStore.normaliseServer($("server").value);
    } catch (err) {
      say(err.message, "error");
      return;
    }
    const allowed = await PfUi.requestServerPermission(server).catch(() => false);
    if (!allowed) {
      say(`Paperfeed needs permission to talk to ${server}.`, "error");
      return;
    }
    const status = await send("status");
    if (status.ok && status.data.consented) {
      // a token belongs to one server: register again with the new one
      const res = await send("register", { server });
      say(res.ok ? `Registered with ${server}.` : `Couldn't register with ${server}${res.detail ? `: ${res.detail}` : ""}.`, res.ok ? "" : "error");
    } else {
      await PfStore.updateSettings({ server });
      say(`Saved. Paperfeed will use ${server} when you turn it on.`);
    }
    render();
  });

  $("paused").addEventListener("change", (ev) => PfStore.updateSettings({ paused: ev.currentTarget.checked }));
  $("flush").addEventListener("click", async () => {
    const res = await send("flushNow");
    say(res.ok ? "Done." : "Couldn't send now; it will be retried.", res.ok ? "" : "error");
    render();
  });

  $("export").addEventListener("click", async () => {
    say("Preparing your data…");
    const res = await send("exportData");
    if (!res.ok) {
      say(PfUi.problemText(res).text, "error");
      return;
    }
    PfUi.downloadJson(res.data, `paperfeed-export-${new Date().toISOString().slice(0, 10)}.json`);
    say("Your data was downloaded.");
  });

  $("delete").addEventListener("click", () => {
    $("delete").hidden = true;
    $("delete-confirm").hidden = false;
  });
  $("delete-confirm").addEventListener("click", async () => {
    $("delete-confirm").disabled = true;
    const res = await send("deleteData");
    $("delete-confirm").disabled = false;
    $("delete-confirm").hidden = true;
    $("delete").hidden = false;
    if (res.ok) say("Your data was deleted from the server and from this browser. Capture is off.", "done");
    else say(`Nothing was deleted: ${PfUi.problemText(res).text}`, "error");
    render();
  });

  chrome.storage.onChanged.addListener(() => render());
  render();
})();
