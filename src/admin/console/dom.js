// Rendering helpers shared by the views.
//
// Stored events and errors are attacker-controlled, so the DOM is only ever
// built from elements and text nodes: no innerHTML anywhere. Strings passed as
// children always become text.

/**
 * Make an element. `attrs`: `class`, `text`, `on` ({event: handler}), and any
 * other attribute (set with setAttribute; `false`/null/undefined leave it
 * out, `true` sets it empty). Children: nodes, strings (as text), arrays,
 * or null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "text") {
      el.textContent = String(v);
    } else if (k === "value") {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replace everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A hash link inside the console (`#/deliveries?state=dead`). */
export function link(route, text, attrs) {
  return h("a", { href: `#/${route}`, ...attrs }, text);
}

/** `#/deliveries?...` with the non-empty parameters. */
export function route(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// ---- formatting ------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

/** A local time as `2026-05-01 14:03:09` (null: a dash). */
export function localTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A duration in seconds, short and readable: `850 ms`, `12 s`, `3 min 4 s`, `2 h 5 min`, `3 d 4 h`. */
export function age(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${m % 60} min`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

/** How long ago (or from now) `iso` is: `12 s ago`, `in 3 min 0 s`. */
export function relative(iso) {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "";
  const diff = (Date.now() - t) / 1000;
  return diff >= 0 ? `${age(diff)} ago` : `in ${age(-diff)}`;
}

/** A <time> with the local time, how long ago, and the exact UTC value on hover. */
export function when(iso, attrs) {
  if (!iso) return h("span", { class: "muted", ...attrs }, "—");
  return h(
    "time",
    { datetime: iso, title: iso, ...attrs },
    localTime(iso),
    h("span", { class: "rel" }, relative(iso)),
  );
}

/** JSON, two-space indented (a string that is not JSON stays as it is). */
export function pretty(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A number with thin grouping (`12 345`). */
export function num(n) {
  return typeof n === "number" ? n.toLocaleString("en-US").replace(/,/g, "\u202f") : "—";
}

// ---- small components ------------------------------------------------------

export const STATES = ["pending", "in_flight", "retrying", "delivered", "dead"];
export const FINAL_STATES = ["delivered", "dead"];

/** A delivery state as a coloured badge. */
export function stateBadge(state, attrs) {
  return h("span", { class: `badge state-${state}`, "data-state": state, ...attrs }, state.replace("_", " "));
}

/** An HTTP (or SMTP) status of an attempt, coloured by class. */
export function statusBadge(status) {
  if (status === null || status === undefined) return h("span", { class: "badge status-none" }, "no answer");
  const cls = status < 300 ? "ok" : status < 500 ? "warn" : "err";
  return h("span", { class: `badge status-${cls}` }, String(status));
}

/** A heading row: a title, an optional subtitle and controls on the right. */
export function header(title, subtitle, ...controls) {
  return h(
    "div",
    { class: "view-head" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "sub" }, subtitle) : null),
    controls.length ? h("div", { class: "controls" }, controls) : null,
  );
}

/**
 * The API's answer to an action: `METHOD path → status`, then the body. Its
 * `data-status` carries the number so tests and people read the same thing.
 * `collapsed`: the body folded away (when the view renders it nicely too);
 * by default a long success (a replayed delivery's record) and an error body
 * that is just `{error, message}` (the line above it says both) are folded;
 * short answers (`{"replayed": 3}`) and anything else stay in sight.
 */
export function answerPanel(answer, { collapsed } = {}) {
  const cls = answer.status === 0 ? "err" : answer.ok ? "ok" : answer.status < 500 ? "warn" : "err";
  const statusText = answer.status === 0 ? "no answer" : `${answer.status} ${answer.statusText || ""}`.trim();
  const message =
    !answer.ok && answer.message
      ? h("p", { class: "answer-message" }, answer.code ? [h("code", {}, answer.code), " "] : null, answer.message)
      : null;
  const hasBody = answer.body !== null && answer.body !== "";
  const text = hasBody ? pretty(answer.body) : "";
  const body = hasBody ? h("pre", { class: "answer-body" }, text) : null;
  if (collapsed === undefined) {
    const plainError = !answer.ok && answer.body && typeof answer.body === "object" && Object.keys(answer.body).every((k) => k === "error" || k === "message");
    collapsed = (answer.ok && text.split("\n").length > 8) || Boolean(plainError);
  }
  return h(
    "div",
    { class: `answer answer-${cls}`, "data-testid": "answer", "data-status": answer.status, role: "status" },
    h(
      "div",
      { class: "answer-line" },
      h("code", { class: "answer-req" }, `${answer.method} ${answer.path}`),
      h("span", { class: "arrow" }, "→"),
      h("strong", { class: "answer-status" }, statusText),
    ),
    message,
    body && collapsed ? h("details", {}, h("summary", {}, "The answer as JSON"), body) : body,
  );
}

/** A failed read shown in place of a view's content. */
export function errorBox(answer, what) {
  return h(
    "div",
    { class: "error-box", "data-testid": "error", "data-status": answer.status },
    h("strong", {}, `Could not load ${what}: `),
    answer.status ? `${answer.status} ` : "",
    answer.code ? h("code", {}, answer.code) : null,
    answer.message ? ` ${answer.message}` : "",
  );
}

/**
 * A table that scrolls sideways on a laptop and becomes stacked cards on a
 * phone (each cell labelled by its column through `data-label`).
 * `columns`: [{label, cell: row => node|string, class?}].
 */
export function table(columns, rows, attrs) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "grid", ...attrs },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class, scope: "col" }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            row.__attrs || {},
            columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

/** A definition list of [term, value] pairs (values: nodes or strings). */
export function facts(pairs, attrs) {
  return h(
    "dl",
    { class: "facts", ...attrs },
    pairs.filter(Boolean).map(([k, v, a]) => h("div", { class: "fact", ...a }, h("dt", {}, k), h("dd", {}, v))),
  );
}

/** A <select> of `options` ([value, label] or strings) with `selected`. */
export function select(attrs, options, selected) {
  return h(
    "select",
    attrs,
    options.map((o) => {
      const [value, label] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: value === selected }, label);
    }),
  );
}

/** A button that shows it is busy while `action` runs (no double submits). */
export function button(label, attrs, action) {
  const b = h("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", async () => {
    if (b.disabled) return;
    b.disabled = true;
    b.classList.add("busy");
    try {
      await action();
    } finally {
      b.disabled = false;
      b.classList.remove("busy");
    }
  });
  return b;
}
