// The console's entry point: sign-in, the hash router, the nav bar and the
// live refresh loop. Each view lives in views/*.js and renders into <main>.
//
// Routes: #/overview, #/deliveries?state=&target=&event_id=&cursor=&limit=,
// #/delivery/<id>, #/actions?target=, #/config, #/try.

import * as api from "./api.js";
import { h, fill, localTime } from "./dom.js";
import overview from "./views/overview.js";
import deliveries from "./views/deliveries.js";
import delivery from "./views/delivery.js";
import actions from "./views/actions.js";
import config from "./views/config.js";
import tryEvent from "./views/try.js";

const VIEWS = { overview, deliveries, delivery, actions, config, try: tryEvent };

const main = document.getElementById("app");
const nav = document.getElementById("nav");
const liveEl = document.getElementById("live");
const bannerEl = document.getElementById("banner");
const signOutBtn = document.getElementById("sign-out");

/** "signin" while the sign-in form shows, "blocked" on a 403, else "app". */
let mode = "loading";
/** Bumped on every render: a view's late answer for an older one is dropped. */
let generation = 0;
/** The pending timer of the current view's live refresh. */
let timer = null;
let refresher = null;

// ---- the config, shared by the views that list targets and sources --------

let configCache = null;
let configAt = 0;

/** GET /admin/config, cached for 10 s (the selects of several views need it). */
async function loadConfig(fresh) {
  if (!fresh && configCache && configCache.ok && Date.now() - configAt < 10_000) return configCache;
  configCache = await api.get("/admin/config");
  configAt = Date.now();
  return configCache;
}

// ---- routing ----------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const [name, ...rest] = path.split("/");
  return {
    name: VIEWS[name] ? name : "overview",
    arg: rest.length ? decodeURIComponent(rest.join("/")) : "",
    params: new URLSearchParams(query),
  };
}

function stopRefresh() {
  clearTimeout(timer);
  timer = null;
  refresher = null;
  liveEl.textContent = "";
  liveEl.className = "live";
}

/** Render the view the hash names. */
function render() {
  if (mode !== "app") return;
  stopRefresh();
  const gen = ++generation;
  const r = parseHash();
  const view = VIEWS[r.name];
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("active", a.dataset.view === (view.nav || r.name));
  }
  document.title = `${view.title} · hookgate`;
  fill(main);
  delete main.dataset.state;
  main.dataset.view = r.name;
  const ctx = {
    arg: r.arg,
    params: r.params,
    alive: () => gen === generation && mode === "app",
    config: loadConfig,
    go: (route) => {
      location.hash = `#/${route}`;
    },
    /**
     * Call `fn` every `ms` while this view is shown and the tab is visible.
     * `fn` answers the Answer it got (for the header's "updated" line), or
     * "stop" to end the refresh (a delivery that reached a final state).
     */
    every: (ms, fn) => {
      if (gen !== generation) return;
      refresher = { ms, fn, gen };
      schedule();
    },
    /** Note a read's outcome in the header (views without a refresh loop too). */
    seen: noteAnswer,
  };
  Promise.resolve(view.render(main, ctx)).catch((e) => {
    // A bug in a view must not leave a blank page without a word.
    if (gen === generation) fill(main, h("div", { class: "error-box" }, `This view failed: ${e.message || e}`));
    console.error(e);
  });
}

// ---- live refresh -------------------------------------------------------------

/** Run the current refresher's next call after its interval. */
function schedule() {
  clearTimeout(timer);
  if (!refresher || document.hidden) return;
  const r = refresher;
  timer = setTimeout(() => tick(r), r.ms);
}

/** One refresh, then the next one (unless the view moved on or said stop). */
async function tick(r) {
  if (r !== refresher || r.gen !== generation || document.hidden) return;
  const result = await r.fn().catch((e) => {
    console.error(e);
    return null;
  });
  if (r !== refresher) return;
  if (result === "stop") {
    refresher = null;
    return;
  }
  noteAnswer(result);
  schedule();
}

function noteAnswer(answer) {
  if (!answer || typeof answer !== "object") return;
  if (answer.status === 0) {
    liveEl.textContent = "offline";
    liveEl.className = "live offline";
    fill(bannerEl, h("div", { class: "banner", role: "alert" }, answer.message, refresher ? " — retrying" : ""));
  } else {
    liveEl.textContent = `updated ${localTime(new Date().toISOString()).slice(11)}`;
    liveEl.className = refresher ? "live on" : "live";
    fill(bannerEl);
  }
}

document.addEventListener("visibilitychange", () => {
  // Hidden tabs poll nothing; coming back refreshes at once.
  if (document.hidden) {
    clearTimeout(timer);
    if (refresher) {
      liveEl.textContent = "paused";
      liveEl.className = "live";
    }
  } else if (refresher) {
    clearTimeout(timer);
    tick(refresher);
  }
});

// ---- sign-in ------------------------------------------------------------------

function setMode(next) {
  mode = next;
  document.body.dataset.mode = next;
  signOutBtn.hidden = !(next === "app" && api.token());
}

/** The sign-in form's error line, while it is shown. */
let signInError = null;

/** Show the sign-in form; `refused` is the 401 that brought us here, if a token was sent. */
function showSignIn(refused) {
  stopRefresh();
  generation++;
  configCache = null;
  if (mode === "signin" && signInError?.isConnected) {
    // Shown already (a wrong token, or a second late 401): keep what is typed, say why.
    if (refused) signInError.textContent = refusedText(refused);
    return;
  }
  setMode("signin");
  document.title = "Sign in · hookgate";
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "signin-help",
  });
  const error = h("p", { class: "signin-error", id: "signin-error", role: "alert" });
  signInError = error;
  if (refused) error.textContent = refusedText(refused);
  const submit = h("button", { type: "submit", class: "primary", id: "sign-in" }, "Sign in");
  const form = h(
    "form",
    { class: "signin card", id: "signin-form", novalidate: true },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { id: "signin-help", class: "muted" },
      "This gateway's admin API asks for its admin token (admin.token). The console keeps it in this tab's session storage and sends it as a bearer header.",
    ),
    h("label", { for: "token" }, "Admin token"),
    input,
    error,
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = "Enter the token.";
      return;
    }
    submit.disabled = true;
    api.setToken(value);
    const answer = await loadConfig(true);
    submit.disabled = false;
    // A 401 has already brought the form back with its message.
    if (answer.ok) enterApp();
    else if (answer.status !== 401) showProblem(answer);
  });
  fill(main, form);
  main.dataset.view = "signin";
  input.focus();
}

function refusedText(answer) {
  return `The gateway refused the token (${answer.status} ${answer.code || ""}). Sign in again.`;
}

/** A 403 (no token configured on a public listener) or an unreachable gateway. */
function showProblem(answer) {
  stopRefresh();
  generation++;
  setMode("blocked");
  const retry = h("button", { type: "button", class: "primary", on: { click: () => start() } }, "Try again");
  fill(
    main,
    h(
      "div",
      { class: "card problem", "data-testid": "problem", "data-status": answer.status },
      h("h1", {}, answer.status === 403 ? "The admin API is closed" : "The admin API did not answer"),
      h("p", {}, answer.status ? `${answer.status} ` : "", answer.code ? h("code", {}, answer.code) : null),
      h("p", {}, answer.message || answer.statusText),
      retry,
    ),
  );
}

function enterApp() {
  setMode("app");
  render();
}

signOutBtn.addEventListener("click", () => {
  api.setToken(null);
  showSignIn(null);
});

// While loading, a 401 only means "sign in" (unless a stored token was sent: start() says so).
api.whenUnauthorized((answer) => showSignIn(mode === "loading" ? null : answer));

// ---- start --------------------------------------------------------------------

/** Try the API first: with no token configured on loopback it simply works. */
async function start() {
  setMode("loading");
  fill(main, h("p", { class: "muted loading" }, "Loading…"));
  const hadToken = Boolean(api.token());
  const answer = await loadConfig(true);
  if (answer.ok) return enterApp();
  if (answer.status === 401) {
    // Shown already by the 401 handler; say why only if a stored token was refused.
    if (hadToken) showSignIn(answer);
    return;
  }
  showProblem(answer);
}

window.addEventListener("hashchange", render);
start();
