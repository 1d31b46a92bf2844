/* email.js: the options page's "Daily email" section (double opt-in via the server). */
/* global PfUi */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const { send } = PfUi;

  function say(text, kind = "") {
    const box = $("email-status");
    box.hidden = !text;
    box.dataset.kind = kind;
    box.textContent = text || "";
  }

  function show(status) {
    const subscribed = status && (status.status === "pending" || status.status === "confirmed");
    $("email-stop").hidden = !subscribed;
    if (!status) return;
    if (status.status === "confirmed") say(`The daily email goes to ${status.address}.`);
    else if (status.status === "pending") say(`Waiting for you to click the link sent to ${status.address}.`);
    else say("");
  }

  function explain(res) {
    if (res.status === 404) {
      $("email-section").hidden = true; // this server sends no email
      return;
    }
    if (res.status === 422) say("That is not an email address.", "error");
    else if (res.status === 429) say("A confirmation was sent a moment ago; please wait a minute.", "error");
    else if (res.status === 503) say("The mail server failed; try again later.", "error");
    else say(PfUi.problemText(res).text, "error");
  }

  async function load() {
    const res = await send("emailStatus");
    if (res.ok) show(res.data);
    else if (res.error === "unregistered") $("email-section").hidden = true;
    else if (res.status === 404) $("email-section").hidden = true;
  }

  $("email-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const address = $("email").value.trim();
    const res = await send("subscribeEmail", { address });
    if (!res.ok) {
      explain(res);
      return;
    }
    if (res.data.status === "confirmed") say(`Already subscribed: the daily email goes to ${res.data.address}.`);
    else say(`Check your inbox: click the link sent to ${res.data.address} (valid 48 hours).`, "done");
    $("email-stop").hidden = false;
  });

  $("email-stop").addEventListener("click", async () => {
    const res = await send("unsubscribeEmail");
    if (res.ok) {
      say("Unsubscribed: no more daily email, and the address is forgotten.", "done");
      $("email-stop").hidden = true;
    } else explain(res);
  });

  load();
})();
