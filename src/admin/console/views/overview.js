// Overview: per target, its depth by state, what happened in the last
// minutes, circuit, rate limit and the oldest waiting delivery; refreshed
// live (GET /admin/targets every 3 s while the tab is visible).

import * as api from "../api.js";
import { h, fill, header, table, link, route, age, num, errorBox } from "../dom.js";

const REFRESH_MS = 3000;

/** A count that fades out when it is zero and links to the deliveries in that state. */
function count(n, state, target, testid) {
  const zero = !n;
  const text = num(n);
  const attrs = { class: `count count-${state}${zero ? " zero" : ""}`, "data-testid": testid, title: `${state.replace("_", " ")}: ${text}` };
  return zero ? h("span", attrs, text) : link(route("deliveries", { state, target }), text, attrs);
}

function waiting(t) {
  const d = t.depth || {};
  return h(
    "span",
    { class: "counts" },
    count(d.pending, "pending", t.name, "pending"),
    h("span", { class: "sep" }, "/"),
    count(d.in_flight, "in_flight", t.name, "in-flight"),
    h("span", { class: "sep" }, "/"),
    count(d.retrying, "retrying", t.name, "retrying"),
  );
}

function recent(t) {
  const r = t.recent || {};
  return h(
    "span",
    { class: "recent" },
    h("span", { class: `ok${r.delivered ? "" : " zero"}`, title: "attempts delivered" }, "✓ ", num(r.delivered)),
    h("span", { class: `err${r.failed ? "" : " zero"}`, title: "attempts failed" }, "✗ ", num(r.failed)),
    h("span", { class: `warn${r.rate_limited ? "" : " zero"}`, title: "attempts held back by the rate limit" }, "∥ ", num(r.rate_limited)),
  );
}

function circuit(t) {
  const open = t.circuit === "open";
  return h("span", { class: `badge ${open ? "status-err" : "status-ok"}`, "data-testid": "circuit" }, open ? "open" : t.circuit || "—");
}

function rateLimit(t) {
  const r = t.rate_limit;
  if (!r) return h("span", { class: "muted" }, "none");
  return `${num(r.per_second)}/s, burst ${num(r.burst)}`;
}

function oldest(t) {
  if (t.oldest_waiting_age_seconds === null || t.oldest_waiting_age_seconds === undefined) {
    return h("span", { class: "muted" }, "—");
  }
  const stale = t.oldest_waiting_age_seconds > 300;
  return h("span", { class: stale ? "warn-text" : "", title: t.oldest_waiting_at || "" }, age(t.oldest_waiting_age_seconds));
}

/** An ordered target's key and how many keys wait behind a head. */
function ordering(t) {
  const o = t.ordering;
  if (!o) return h("span", { class: "muted" }, "—");
  const blocked = o.blocked_keys || 0;
  return h(
    "span",
    {},
    h("span", { class: "mono" }, o.key),
    " · ",
    h("span", { class: blocked ? "warn-text" : "muted", "data-testid": "blocked-keys" }, `${num(blocked)} blocked`),
  );
}

/** Per ordered target with blocked keys: each key's head and what waits behind it. */
function blockedKeys(targets) {
  const ordered = targets.filter((t) => t.ordering && t.ordering.blocked_keys > 0);
  if (!ordered.length) return null;
  return h(
    "section",
    { class: "card", "data-testid": "blocked" },
    h("h2", {}, "Blocked keys"),
    h("p", { class: "muted" }, "Deliveries of an ordered target's key wait until the one at its head is delivered or dead. The oldest heads first."),
    ordered.map((t) =>
      h(
        "div",
        { "data-target": t.name },
        h("h3", {}, t.name, h("span", { class: "muted" }, ` by ${t.ordering.key}: ${num(t.ordering.blocked_keys)} blocked`)),
        table(
          [
            { label: "Key", cell: (k) => h("code", {}, k.key === "" ? "(no key)" : k.key) },
            { label: "Head", cell: (k) => link(`delivery/${encodeURIComponent(k.head)}`, k.head, { class: "mono", "data-testid": "blocked-head" }) },
            { label: "State", cell: (k) => k.head_state.replace("_", " ") },
            { label: "Attempts", cell: (k) => num(k.head_attempts), class: "num" },
            { label: "Waiting", cell: (k) => num(k.waiting), class: "num" },
            { label: "Last error", cell: (k) => (k.head_last_error ? h("span", { class: "err-text" }, k.head_last_error) : h("span", { class: "muted" }, "—")) },
          ],
          t.ordering.blocked,
        ),
      ),
    ),
  );
}

function targetName(t) {
  return h(
    "div",
    { class: "target-name" },
    link(route("deliveries", { target: t.name }), t.name, { class: "strong" }),
    h("span", { class: "chip" }, t.kind),
    t.enabled === false ? h("span", { class: "chip chip-muted" }, "disabled") : null,
  );
}

/** The sums over every target, as a strip of large numbers. */
function totals(targets) {
  const sum = (f) => targets.reduce((a, t) => a + (f(t) || 0), 0);
  const tile = (label, n, cls, state) =>
    h(
      "div",
      { class: `tile ${cls}${n ? "" : " zero"}`, "data-testid": `total-${label.replace(" ", "-")}` },
      h("div", { class: "tile-n" }, state && n ? link(route("deliveries", { state }), num(n)) : num(n)),
      h("div", { class: "tile-label" }, label),
    );
  return h(
    "div",
    { class: "tiles" },
    tile("waiting", sum((t) => t.depth?.pending + t.depth?.in_flight + t.depth?.retrying), "info", null),
    tile("retrying", sum((t) => t.depth?.retrying), "warn", "retrying"),
    tile("dead", sum((t) => t.depth?.dead), "err", "dead"),
    tile("delivered", sum((t) => t.depth?.delivered), "ok", "delivered"),
    tile("open circuits", targets.filter((t) => t.circuit === "open").length, "err", null),
  );
}

function paint(body, answer) {
  if (!answer.ok) {
    fill(body, errorBox(answer, "the targets"));
    return;
  }
  const { targets = [], window_seconds: windowS = 300 } = answer.body;
  const minutes = Math.round(windowS / 60);
  if (!targets.length) {
    fill(body, h("p", { class: "empty" }, "This config has no targets."));
    return;
  }
  const rows = targets.map((t) => ({ ...t, __attrs: { "data-target": t.name, class: t.enabled === false ? "disabled" : "" } }));
  fill(
    body,
    totals(targets),
    table(
      [
        { label: "Target", cell: targetName },
        { label: "Pending / in flight / retrying", cell: waiting, class: "num" },
        { label: "Dead", cell: (t) => count(t.depth?.dead, "dead", t.name, "dead"), class: "num" },
        { label: "Delivered", cell: (t) => count(t.depth?.delivered, "delivered", t.name, "delivered"), class: "num" },
        { label: `Last ${minutes} min`, cell: recent, class: "num" },
        { label: "Circuit", cell: circuit },
        { label: "Rate limit", cell: rateLimit },
        { label: "Oldest waiting", cell: oldest, class: "num" },
        { label: "Ordering", cell: ordering },
      ],
      rows,
      { id: "targets", "data-testid": "targets" },
    ),
    blockedKeys(targets),
    h(
      "p",
      { class: "footnote" },
      `Depth counts every stored delivery by state. "Last ${minutes} min" counts this process's attempts: delivered, failed, held back by the rate limit. Oldest waiting: the oldest delivery neither delivered nor dead.`,
    ),
  );
}

export default {
  title: "Overview",
  async render(main, ctx) {
    const body = h("div", { class: "overview-body" }, h("p", { class: "muted loading" }, "Loading…"));
    fill(main, header("Overview", "Every target of the running config, live."), body);
    const refresh = async () => {
      const answer = await api.get("/admin/targets");
      if (!ctx.alive()) return "stop";
      paint(body, answer);
      return answer;
    };
    ctx.seen(await refresh());
    ctx.every(REFRESH_MS, refresh);
  },
};
