// Deliveries: newest first, filtered by state, target and event id, paged
// with the API's opaque cursor. The first page refreshes itself (every 4 s,
// "Live" checked) so a delivery that dies or is delivered shows up unasked;
// later pages stay still so rows do not shift under the reader.

import * as api from "../api.js";
import { h, fill, header, table, link, route, when, relative, stateBadge, select, errorBox, STATES, num } from "../dom.js";

/** Rows per page; `limit=` in the hash picks another (the API clips at 1000). */
const PAGE = 50;
const REFRESH_MS = 4000;

/**
 * The cursors of the pages before this one, per filter, so "Newer" can go
 * back; a page opened from a link has none and offers "Newest" instead.
 */
const previous = new Map();

function shortId(id) {
  return id ? `${id.slice(0, 8)}…${id.slice(-4)}` : "";
}

/** Why it is dead, or when it is tried next, and the last error. */
function lastWord(d) {
  // A delivered delivery's last error is history: the timeline keeps it.
  const error = d.last_error && d.state !== "delivered" ? h("span", { class: "clip", title: d.last_error }, d.last_error) : null;
  if (d.state === "dead") {
    return h("span", { class: "chips" }, d.dead_reason ? h("span", { class: "chip chip-err" }, d.dead_reason.replace("_", " ")) : null, error);
  }
  if (d.next_attempt_at && d.state !== "delivered") {
    const rel = relative(d.next_attempt_at);
    return h(
      "span",
      { class: "chips" },
      error,
      h("span", { class: "muted", title: d.next_attempt_at }, rel.startsWith("in ") ? `next ${rel}` : "next: due"),
    );
  }
  return error || h("span", { class: "muted" }, "—");
}

function rows(list, ctx) {
  return table(
    [
      { label: "Created", cell: (d) => when(d.created_at) },
      { label: "State", cell: (d) => stateBadge(d.state) },
      { label: "Target", cell: (d) => h("span", { class: "strong" }, d.target) },
      { label: "Route", cell: (d) => d.route },
      { label: "Attempts", cell: (d) => num(d.attempt_count), class: "num" },
      { label: "Next / last error", cell: lastWord, class: "wide" },
      {
        label: "Delivery",
        cell: (d) => link(`delivery/${encodeURIComponent(d.id)}`, shortId(d.id), { class: "mono", "data-testid": "delivery-link", title: d.id }),
      },
    ],
    list.map((d) => ({
      ...d,
      __attrs: {
        "data-id": d.id,
        "data-state": d.state,
        "data-target": d.target,
        class: "clickable",
        // The whole row opens the delivery; its links and selected text keep their own meaning.
        on: {
          click: (ev) => {
            if (ev.target.closest("a") || String(window.getSelection())) return;
            ctx.go(`delivery/${encodeURIComponent(d.id)}`);
          },
        },
      },
    })),
    { id: "deliveries", "data-testid": "deliveries" },
  );
}

export default {
  title: "Deliveries",
  async render(main, ctx) {
    const p = ctx.params;
    const filters = { state: p.get("state") || "", target: p.get("target") || "", event_id: p.get("event_id") || "" };
    // Kept in every link of this view, but not a filter of its own.
    const limit = Math.min(Math.max(parseInt(p.get("limit"), 10) || PAGE, 1), 1000);
    const pageSize = limit === PAGE ? "" : String(limit);
    const cursor = p.get("cursor") || "";
    const key = JSON.stringify({ ...filters, limit });
    // Page one has nothing newer: forget a trail left by earlier paging.
    if (!cursor) previous.delete(key);
    const stack = previous.get(key) || [];

    const cfg = await ctx.config();
    if (!ctx.alive()) return;
    const targetNames = cfg.ok ? cfg.body.targets.map((t) => t.name) : [];
    if (filters.target && !targetNames.includes(filters.target)) targetNames.push(filters.target);

    const stateSel = select({ id: "f-state", name: "state" }, [["", "any state"], ...STATES.map((s) => [s, s.replace("_", " ")])], filters.state);
    const targetSel = select({ id: "f-target", name: "target" }, [["", "any target"], ...targetNames], filters.target);
    const eventInput = h("input", { id: "f-event", name: "event_id", placeholder: "event id", value: filters.event_id, spellcheck: "false", autocomplete: "off" });
    const form = h(
      "form",
      { class: "filters", id: "filters" },
      h("label", {}, h("span", {}, "State"), stateSel),
      h("label", {}, h("span", {}, "Target"), targetSel),
      h("label", { class: "grow" }, h("span", {}, "Event id"), eventInput),
      h("div", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary", id: "apply" }, "Apply"), link("deliveries", "Clear", { class: "button" })),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      ctx.go(route("deliveries", { state: stateSel.value, target: targetSel.value, event_id: eventInput.value.trim(), limit: pageSize }));
    });
    // Changing a select applies at once; the event id waits for Enter or Apply.
    for (const s of [stateSel, targetSel]) s.addEventListener("change", () => form.requestSubmit());

    const live = h("input", { type: "checkbox", id: "live-toggle", checked: !cursor });
    const liveLabel = h("label", { class: "toggle", title: "Refresh the first page every few seconds" }, live, " Live");
    // The filters it shows, on the list itself: a reader (or a test) can tell this page from the one before.
    const list = h(
      "div",
      { class: "list", id: "deliveries-list", "data-state": filters.state, "data-target": filters.target },
      h("p", { class: "muted loading" }, "Loading…"),
    );
    const pager = h("div", { class: "pager" });
    const hint = filters.state === "dead"
      ? h("p", { class: "hint" }, "Dead letters can be replayed or purged together under ", link(route("actions", { target: filters.target }), "Actions"), ".")
      : null;

    fill(main, header("Deliveries", "Newest first.", cursor ? null : liveLabel), form, hint, list, pager);

    const load = async () => {
      const answer = await api.get("/admin/deliveries", { ...filters, limit, cursor });
      if (!ctx.alive()) return "stop";
      if (!answer.ok) {
        fill(list, errorBox(answer, "deliveries"));
        return answer;
      }
      const items = answer.body.deliveries || [];
      fill(
        list,
        items.length
          ? rows(items, ctx)
          : h("p", { class: "empty", "data-testid": "empty" }, cursor ? "No more deliveries." : "No delivery matches these filters."),
      );
      const newer = stack.length
        ? h("button", { type: "button", id: "newer", on: { click: () => {
            const prev = stack.pop();
            previous.set(key, stack);
            ctx.go(route("deliveries", { ...filters, limit: pageSize, cursor: prev }));
          } } }, "← Newer")
        : cursor
          ? link(route("deliveries", { ...filters, limit: pageSize }), "← Newest", { class: "button", id: "newest" })
          : null;
      const older = answer.body.next
        ? h("button", { type: "button", id: "older", on: { click: () => {
            previous.set(key, [...stack, cursor]);
            ctx.go(route("deliveries", { ...filters, limit: pageSize, cursor: answer.body.next }));
          } } }, "Older →")
        : null;
      fill(pager, newer, h("span", { class: "muted" }, `${items.length} shown`), older);
      return answer;
    };

    ctx.seen(await load());
    if (!cursor) {
      ctx.every(REFRESH_MS, async () => (live.checked ? load() : null));
    }
  },
};
