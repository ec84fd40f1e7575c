// One delivery: its facts, a replay button with the API's answer, every
// attempt as a timeline and the stored event pretty-printed. While the
// delivery is not final (pending, in flight, retrying) it refreshes every
// 2 s, so a replay can be watched until it is delivered or dead again.

import * as api from "../api.js";
import { setDraft } from "./try.js";
import { h, fill, header, link, route, when, stateBadge, statusBadge, facts, pretty, answerPanel, errorBox, button, num, FINAL_STATES } from "../dom.js";

const REFRESH_MS = 2000;

function attempt(a) {
  const failed = a.error || a.status === null || a.status >= 300;
  return h(
    "li",
    { class: `attempt ${failed ? "failed" : "succeeded"}`, "data-testid": "attempt", "data-n": a.n },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h(
      "div",
      { class: "attempt-body" },
      h(
        "div",
        { class: "attempt-line" },
        h("strong", {}, `#${a.n}`),
        when(a.at),
        statusBadge(a.status),
        h("span", { class: "muted", title: "duration" }, `${num(a.duration_ms)} ms`),
      ),
      a.error ? h("p", { class: "attempt-error" }, a.error) : null,
      a.response_excerpt
        ? h("details", { class: "excerpt" }, h("summary", {}, "Response excerpt"), h("pre", {}, a.response_excerpt))
        : null,
    ),
  );
}

/**
 * The attempts, oldest first. `opened`: the attempt numbers whose excerpt the
 * reader had open before this refresh (null on the first paint, which opens
 * the newest failure's: the one a reader wants).
 */
function timeline(d, opened) {
  const attempts = d.attempts || [];
  if (!attempts.length) return h("p", { class: "empty" }, "No attempt yet.");
  const list = h("ol", { class: "timeline", "data-testid": "timeline" }, attempts.map(attempt));
  const excerpts = [...list.querySelectorAll("li[data-n] details")];
  if (opened) {
    for (const x of excerpts) x.open = opened.has(x.closest("li").dataset.n);
  } else if (excerpts.length) {
    excerpts[excerpts.length - 1].open = true;
  }
  return list;
}

/** The attempt numbers whose excerpt is open in `section` now (null before the first paint). */
function openExcerpts(section) {
  if (!section.querySelector("[data-testid='timeline']")) return null;
  return new Set([...section.querySelectorAll("li[data-n] details[open]")].map((x) => x.closest("li").dataset.n));
}

function summary(d) {
  return facts([
    ["State", h("span", {}, stateBadge(d.state, { "data-testid": "state" }), d.dead_reason ? h("span", { class: "chip chip-err" }, d.dead_reason.replace("_", " ")) : null)],
    ["Target", link(route("deliveries", { target: d.target }), d.target)],
    ["Route", d.route],
    ["Attempts", num(d.attempt_count)],
    ["Event", link(route("deliveries", { event_id: d.event_id }), d.event_id, { class: "mono", title: "every delivery of this event" })],
    d.order_key !== undefined ? ["Ordering key", h("span", { class: "mono", "data-testid": "order-key" }, d.order_key === "" ? "(no key)" : d.order_key)] : null,
    d.waiting_for ? ["Waiting for", h("span", {}, link(`delivery/${encodeURIComponent(d.waiting_for)}`, d.waiting_for, { class: "mono", "data-testid": "waiting-for" }), h("span", { class: "muted" }, " (the head of its key)"))] : null,
    d.next_attempt_at && !FINAL_STATES.includes(d.state) ? ["Next attempt", when(d.next_attempt_at)] : null,
    // Once delivered, the last error is history (the timeline keeps it).
    d.last_error && d.state !== "delivered" ? ["Last error", h("span", { class: "err-text" }, d.last_error)] : null,
    ["Created", when(d.created_at)],
    ["Updated", when(d.updated_at)],
  ]);
}

export default {
  title: "Delivery",
  nav: "deliveries",
  async render(main, ctx) {
    const id = ctx.arg;
    const path = `/admin/deliveries/${encodeURIComponent(id)}`;
    const facts_ = h("div", { class: "card" }, h("p", { class: "muted loading" }, "Loading…"));
    const attempts = h("section", { class: "card" });
    const event = h("section", { class: "card" });
    const answerSlot = h("div", { class: "answer-slot", id: "replay-answer" });

    const refresh = async () => {
      const answer = await api.get(path);
      if (!ctx.alive()) return "stop";
      if (!answer.ok) {
        fill(facts_, errorBox(answer, `delivery ${id}`));
        fill(attempts);
        fill(event);
        return answer;
      }
      const d = answer.body;
      fill(facts_, summary(d));
      // A refresh keeps the excerpts the reader opened or closed.
      const opened = openExcerpts(attempts);
      fill(attempts, h("h2", {}, "Attempts ", h("span", { class: "muted" }, `(${d.attempts?.length ?? 0})`)), timeline(d, opened));
      const text = pretty(d.event);
      fill(
        event,
        h(
          "div",
          { class: "section-head" },
          h("h2", {}, "Stored event"),
          h("button", { type: "button", class: "small", id: "try-this", title: "Open it in Try an event", on: { click: () => {
            setDraft(text);
            ctx.go("try");
          } } }, "Try it"),
          button("Copy", { class: "small" }, async () => {
            await navigator.clipboard?.writeText(text).catch(() => {});
          }),
        ),
        h("pre", { class: "json", "data-testid": "event" }, text),
      );
      main.dataset.state = d.state;
      return answer;
    };

    const replay = button("Replay", { class: "primary", id: "replay", title: "Send it again with a fresh attempt budget (dead or delivered only)" }, async () => {
      const answer = await api.post(`${path}/replay`);
      if (!ctx.alive()) return;
      fill(answerSlot, answerPanel(answer));
      // Watch it go: refresh now and until it is final again.
      await refresh();
      if (answer.ok) ctx.every(REFRESH_MS, loop);
    });

    const loop = async () => {
      const answer = await refresh();
      if (answer === "stop") return "stop";
      return answer.ok && FINAL_STATES.includes(answer.body.state) ? "stop" : answer;
    };

    fill(
      main,
      h("p", { class: "crumbs" }, link("deliveries", "← Deliveries")),
      header("Delivery", h("span", { class: "mono", "data-testid": "delivery-id" }, id), replay),
      answerSlot,
      facts_,
      h("div", { class: "two-col" }, attempts, event),
    );

    const first = await refresh();
    ctx.seen(first);
    if (first !== "stop" && first.ok && !FINAL_STATES.includes(first.body.state)) ctx.every(REFRESH_MS, loop);
  },
};
