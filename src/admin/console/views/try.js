// Try an event: paste a JSON body and see what `hookgate route` would do
// with it on the live config (POST /admin/route): which routes match and
// why not, and what each delivery would send. Nothing is stored or sent.

import * as api from "../api.js";
import { h, fill, header, select, answerPanel, pretty, button, facts } from "../dom.js";

/** The text of the editor survives moving between views (not reloads). */
let draft = "";

/** Put `text` in the editor (a delivery's "Try this event"). */
export function setDraft(text) {
  draft = text;
}

function routesList(routes) {
  return h(
    "ol",
    { class: "routes", "data-testid": "route-results" },
    routes.map((r) =>
      h(
        "li",
        { class: r.matched ? "matched" : "unmatched", "data-route": r.name, "data-matched": String(r.matched) },
        h("span", { class: "mark", "aria-hidden": "true" }, r.matched ? "✓" : "✗"),
        h("strong", {}, r.name),
        h("span", { class: "muted" }, r.matched ? " matched" : ` ${r.reason || "no match"}`),
      ),
    ),
  );
}

/** What one delivery would send, by the preview's `sends`. */
function preview(p) {
  switch (p.sends) {
    case "http":
      // As the request would go on the wire: request line, headers, body.
      return h(
        "pre",
        { class: "json request" },
        h("strong", {}, `${p.method} ${p.url}`),
        "\n",
        (p.headers || []).map(([k, v]) => [h("span", { class: "hname" }, `${k}:`), ` ${v}\n`]),
        "\n",
        prettyBody(p.body),
      );
    case "slack":
      return h("pre", { class: "json" }, pretty(p.message));
    case "email":
      return h(
        "div",
        {},
        facts([["From", p.from], ["To", (p.to || []).join(", ")], ["Subject", p.subject]]),
        h("pre", { class: "json" }, p.body),
        p.html ? h("details", {}, h("summary", {}, "HTML part (as text)"), h("pre", { class: "json" }, p.html)) : null,
      );
    case "log":
      return h("p", { class: "muted" }, "Written to the log as a JSON line; nothing else is rendered.");
    case "render_error":
      return h("div", { class: "error-box" }, h("strong", {}, "The template fails: "), p.error);
    default:
      return h("pre", { class: "json" }, pretty(p));
  }
}

/** A body that is JSON is shown indented; anything else as it is. */
function prettyBody(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function result(body) {
  const deliveries = body.deliveries || [];
  return h(
    "div",
    { class: "try-result", "data-testid": "try-result" },
    h("p", {}, "As source ", h("strong", {}, body.source), body.unmatched ? " — no route matched." : "."),
    (body.schema_warnings || []).length
      ? h("div", { class: "hint" }, h("strong", {}, "Schema warnings: "), h("ul", {}, body.schema_warnings.map((w) => h("li", {}, w))))
      : null,
    h("h2", {}, "Routes"),
    (body.routes || []).length ? routesList(body.routes) : h("p", { class: "empty" }, "The config has no routes."),
    h("h2", {}, `Deliveries (${deliveries.length})`),
    deliveries.length
      ? h("div", { class: "previews" }, deliveries.map((d) =>
          h(
            "section",
            { class: "card preview", "data-testid": "preview", "data-target": d.target },
            h("div", { class: "section-head" }, h("h3", {}, d.target), h("span", { class: "chip" }, d.kind), h("span", { class: "muted" }, ` via ${d.route}`)),
            d.ordering
              ? h("p", { class: "muted", "data-testid": "ordering" }, `Ordered by ${d.ordering.key}: key `, h("code", {}, d.ordering.value === "" ? "(absent: the shared no-key lane)" : d.ordering.value), ", after earlier deliveries of that key.")
              : null,
            preview(d.preview || {}),
          ),
        ))
      : h("p", { class: "empty" }, "Nothing would be delivered."),
    (body.skipped || []).length
      ? h("p", { class: "muted" }, "Skipped (disabled): ", body.skipped.map((s) => `${s.target} (${s.reason})`).join(", "))
      : null,
  );
}

export default {
  title: "Try an event",
  nav: "try",
  async render(main, ctx) {
    const cfg = await ctx.config();
    if (!ctx.alive()) return;
    const sources = cfg.ok ? cfg.body.sources.map((s) => s.name) : [];
    const sourceSel = select({ id: "try-source" }, sources, sources[0]);
    const editor = h("textarea", {
      id: "try-event",
      rows: 14,
      spellcheck: "false",
      autocomplete: "off",
      placeholder: '{"event": "status-changed", "type": "VOICE", "data": {"status": "ended"}}',
    });
    editor.value = draft;
    editor.addEventListener("input", () => {
      draft = editor.value;
    });
    const out = h("div", { class: "answer-slot", id: "try-answer" });
    const res = h("div", {});
    const run = button("Route it", { class: "primary", id: "try-run" }, async () => {
      // The text goes as it is: the server's decoder is the judge, and its 400 is shown.
      const query = sources.length > 1 ? { source: sourceSel.value } : {};
      const answer = await api.post("/admin/route", query, editor.value);
      if (!ctx.alive()) return;
      fill(out, answerPanel(answer, answer.ok ? { collapsed: true } : {}));
      fill(res, answer.ok ? result(answer.body) : null);
    });
    const format = h("button", { type: "button", id: "try-format", on: { click: () => {
      try {
        editor.value = JSON.stringify(JSON.parse(editor.value), null, 2);
        draft = editor.value;
      } catch (e) {
        fill(out, h("div", { class: "error-box" }, `Not JSON: ${e.message}`));
      }
    } } }, "Format");
    editor.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) run.click();
    });
    fill(
      main,
      header("Try an event", "What the running config would do with an event. Nothing is stored or sent."),
      h(
        "div",
        { class: "card" },
        sources.length > 1 ? h("label", { class: "inline" }, h("span", {}, "Source"), sourceSel) : null,
        h("label", { for: "try-event" }, "Event (JSON body)"),
        editor,
        h("div", { class: "row" }, run, format, h("span", { class: "muted small" }, "Ctrl+Enter routes it")),
      ),
      out,
      res,
    );
  },
};
