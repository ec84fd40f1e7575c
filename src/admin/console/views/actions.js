// Actions: replay one delivery by id, replay a target's (or every) dead
// letters, and purge them behind an in-page confirmation. Each shows the
// API's status and answer as it came, 404 and 409 included.

import * as api from "../api.js";
import { h, fill, header, select, answerPanel, button, num } from "../dom.js";

// No target is named "": the empty value stands for all of them.
const ALL = "";

/** `?target=x` or `?all=true` for the bulk endpoints. */
function scope(value) {
  return value === ALL ? { all: "true" } : { target: value };
}

function scopeName(value) {
  return value === ALL ? "every target" : `target ${value}`;
}

function card(title, text, ...children) {
  return h("section", { class: "card action" }, h("h2", {}, title), h("p", { class: "muted" }, text), children);
}

function replayOne() {
  const input = h("input", { id: "replay-id", placeholder: "delivery id", spellcheck: "false", autocomplete: "off" });
  const out = h("div", { class: "answer-slot", id: "replay-one-answer" });
  const go = button("Replay", { class: "primary", id: "replay-one" }, async () => {
    const id = input.value.trim();
    if (!id) {
      input.focus();
      return;
    }
    fill(out, answerPanel(await api.post(`/admin/deliveries/${encodeURIComponent(id)}/replay`)));
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") go.click();
  });
  return card(
    "Replay one delivery",
    "A dead or delivered delivery is sent again under the same id with a fresh attempt budget; any other state answers 409.",
    h("div", { class: "row" }, input, go),
    out,
  );
}

function targetPicker(id, names, selected) {
  return select({ id }, [...names.map((n) => [n, n]), [ALL, "all targets"]], selected || names[0] || ALL);
}

function replayDead(names, selected) {
  const pick = targetPicker("replay-target", names, selected);
  const out = h("div", { class: "answer-slot", id: "replay-dead-answer" });
  const go = button("Replay dead letters", { class: "primary", id: "replay-dead" }, async () => {
    fill(out, answerPanel(await api.post("/admin/dead-letters/replay", scope(pick.value))));
  });
  return card("Replay dead letters", "Every dead delivery of the target goes back to pending.", h("div", { class: "row" }, pick, go), out);
}

/** How many dead letters the scope holds now, from GET /admin/targets (null if unknown). */
async function deadCount(value) {
  const a = await api.get("/admin/targets");
  if (!a.ok || !Array.isArray(a.body?.targets)) return null;
  return a.body.targets.filter((t) => value === ALL || t.name === value).reduce((n, t) => n + (t.depth?.dead || 0), 0);
}

function purgeDead(names, selected) {
  const pick = targetPicker("purge-target", names, selected);
  const out = h("div", { class: "answer-slot", id: "purge-answer" });
  const confirmSlot = h("div", { class: "confirm-slot" });
  const ask = button("Purge dead letters…", { class: "danger", id: "purge" }, async () => {
    const value = pick.value;
    const n = await deadCount(value);
    fill(out);
    const yes = button("Delete them", { class: "danger", id: "purge-confirm" }, async () => {
      fill(confirmSlot);
      ask.hidden = false;
      pick.disabled = false;
      fill(out, answerPanel(await api.del("/admin/dead-letters", scope(value))));
    });
    const no = h("button", { type: "button", id: "purge-cancel", on: { click: () => {
      fill(confirmSlot);
      ask.hidden = false;
      pick.disabled = false;
      ask.focus();
    } } }, "Cancel");
    const how = n === null ? "Every dead letter" : n === 1 ? "1 dead letter" : `${num(n)} dead letters`;
    fill(
      confirmSlot,
      h(
        "div",
        { class: "confirm", role: "alertdialog", "aria-labelledby": "confirm-text", "data-testid": "confirm" },
        h("p", { id: "confirm-text" }, h("strong", {}, `${how} of ${scopeName(value)}`), " will be deleted for good. This cannot be undone."),
        h("div", { class: "row" }, yes, no),
      ),
    );
    // The choice is made: keep it fixed while the question stands.
    ask.hidden = true;
    pick.disabled = true;
    no.focus();
  });
  return card("Purge dead letters", "Deletes dead deliveries for good. You are asked to confirm first.", h("div", { class: "row" }, pick, ask), confirmSlot, out);
}

export default {
  title: "Actions",
  async render(main, ctx) {
    const cfg = await ctx.config();
    if (!ctx.alive()) return;
    const names = cfg.ok ? cfg.body.targets.map((t) => t.name) : [];
    const selected = ctx.params.get("target") || "";
    fill(
      main,
      header("Actions", "Each button calls the admin API and shows its answer."),
      h("div", { class: "actions-grid" }, replayOne(), replayDead(names, selected), purgeDead(names, selected)),
    );
  },
};
