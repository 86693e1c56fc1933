// The desk's ticket actions, a little livelier (web/actions.py): while an agent types
// in the reply box, tell the server (others then see "Alice is replying"); every few
// seconds ask whether the ticket changed since the page was drawn, and who else is
// replying. Without this script the forms work the same; a stale one gets a 409.
// Served from /desk/static under the desk's CSP (script-src 'self'); text only
// (textContent), nothing from the server is ever parsed as HTML.
"use strict";
(function () {
  const form = document.querySelector("form[data-ticket-actions]");
  if (!form) {
    return;
  }
  const text = form.querySelector("textarea[name=text]");
  const token = form.querySelector("input[name=csrf_token]").value;
  const drawn = form.dataset.version;
  const beatEvery = Math.max(10, Number(form.dataset.heartbeat) || 30) * 1000;
  const pollEvery = 10000;
  const replyingNote = document.querySelector("[data-replying]");
  const changedNote = document.querySelector("[data-changed]");
  let lastBeat = 0;

  function show(state) {
    if (!state || typeof state.version !== "string") {
      return;
    }
    const names = Array.isArray(state.replying) ? state.replying.map(String) : [];
    if (replyingNote) {
      replyingNote.textContent = names.length === 0 ? "" :
        names.join(", ") + (names.length === 1 ? " is" : " are") + " replying.";
      replyingNote.hidden = names.length === 0;
    }
    if (changedNote && state.version !== drawn) {
      changedNote.hidden = false;
    }
  }

  function ask(url, options) {
    return fetch(url, Object.assign({credentials: "same-origin", redirect: "error",
                                     headers: {"Accept": "application/json"}}, options))
      .then(function (r) {
        const json = (r.headers.get("content-type") || "").startsWith("application/json");
        return r.ok && json ? r.json() : null;
      })
      .then(show)
      .catch(function () { /* offline or signed out: the forms still work */ });
  }

  function beat(state) {
    lastBeat = Date.now();
    const body = new URLSearchParams({csrf_token: token, state: state});
    return ask(form.dataset.presenceUrl, {method: "POST", body: body});
  }

  function typing() {
    if (Date.now() - lastBeat > beatEvery / 2) {
      beat("replying");
    }
  }

  function busy() {
    return document.activeElement === text || text.value.trim() !== "";
  }

  text.addEventListener("focus", typing);
  text.addEventListener("input", typing);
  text.addEventListener("blur", function () {
    if (!text.value.trim()) {
      beat("gone");
    }
  });
  if (document.activeElement === text) {
    typing();
  }
  setInterval(function () {
    if (busy()) {
      beat("replying");
    }
  }, beatEvery);
  setInterval(function () {
    if (!document.hidden && Date.now() - lastBeat > pollEvery / 2) {
      ask(form.dataset.versionUrl, {method: "GET"});
    }
  }, pollEvery);
}());
