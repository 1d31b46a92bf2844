/* welcome.js: the consent page. Registration happens only after "I agree". */
/* global PfUi, PfStore */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const message = (text) => { $("message").hidden = !text; $("message").textContent = text || ""; };

  PfStore.getState().then((state) => {
    $("server").value = state.settings.server;
    if (state.consent && state.auth) { $("ask").hidden = true; $("done").hidden = false; }
    document.body.dataset.loaded = "1";
  });

  $("consent").addEventListener("click", async () => {
    let server;
    try {
      server = PfStore.normaliseServer($("server").value);
    } catch (err) {
      message(err.message);
      return;
    }
    // straight from the click: Firefox only grants permission requests made in the user gesture
    const allowed = await PfUi.requestServerPermission(server).catch(() => false);
    if (!allowed) {
      message(`Paperfeed needs permission to talk to ${server}.`);
      return;
    }
    $("consent").disabled = true;
    message("Connecting…");
    const res = await PfUi.send("register", { server });
    $("consent").disabled = false;
    if (!res.ok) {
      message(`Couldn't register with ${server}${res.detail ? `: ${res.detail}` : ""}. Nothing was collected.`);
      return;
    }
    message("");
    $("ask").hidden = true;
    $("done").hidden = false;
  });

  $("decline").addEventListener("click", () => {
    $("ask").hidden = true;
    $("declined").hidden = false;
  });
})();
