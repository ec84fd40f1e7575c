// Config: the running config as GET /admin/config answers it (secrets
// already redacted by the server), the last reload error, and a button that
// reloads the file now (POST /admin/reload) and shows the answer.

import * as api from "../api.js";
import { h, fill, header, table, facts, when, pretty, answerPanel, errorBox, button, link, route } from "../dom.js";

/** Milliseconds as the config would write them (`1500` -> `1.5s`). */
function ms(v) {
  if (typeof v !== "number") return "—";
  if (v % 3_600_000 === 0 && v) return `${v / 3_600_000}h`;
  if (v % 60_000 === 0 && v) return `${v / 60_000}m`;
  if (v >= 1000) return `${v / 1000}s`;
  return `${v}ms`;
}

function retry(r) {
  if (!r) return "—";
  const jitter = r.jitter ? ", jitter" : "";
  if (r.schedule_ms) return `${r.schedule_ms.map(ms).join(", ")} (max ${r.max_attempts}${jitter})`;
  return `exponential ${ms(r.initial_delay_ms)}…${ms(r.max_delay_ms)} ×${r.multiplier} (max ${r.max_attempts}${jitter})`;
}

/** Rate limit, concurrency and circuit breaker, one per line. */
function limits(t) {
  const lines = [];
  lines.push(t.rate_limit ? `${t.rate_limit.per_second}/s, burst ${t.rate_limit.burst}` : "no rate limit");
  if (t.concurrency !== undefined) lines.push(`concurrency ${t.concurrency}`);
  const cb = t.circuit_breaker;
  if (cb) lines.push(`circuit: ${cb.failures} failures, ${ms(cb.cooldown_ms)} cooldown`);
  return h("span", { class: "lines" }, lines.join("\n"));
}

/** What a target sends to: its (redacted) url, smtp host, path... */
function destination(t) {
  switch (t.kind) {
    case "http":
      return h("span", {}, h("code", {}, t.method || "POST"), " ", h("span", { class: "mono break" }, t.url || ""));
    case "slack":
      return h("span", { class: "mono" }, t.webhook_url || "");
    case "email":
      return h("span", {}, `${(t.to || []).join(", ")} via ${t.smtp?.host || "?"}:${t.smtp?.port ?? "?"} (${t.smtp?.tls || "?"})`);
    case "log":
      return t.path ? h("span", { class: "mono" }, t.path) : "stdout";
    default:
      return "";
  }
}

/** Every field the columns do not show, as `key: value` lines. */
function details(t, shown) {
  const rest = Object.entries(t).filter(([k]) => !shown.includes(k));
  if (!rest.length) return h("span", { class: "muted" }, "—");
  return h(
    "details",
    { class: "more" },
    h("summary", {}, `${rest.length} more`),
    h("pre", { class: "json small" }, rest.map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join("\n")),
  );
}

/** One field test as the rules file reads: `type in [VOICE, SMS]`, `data.x exists`. */
function test(key, op, value) {
  if (op === "exists") return `${key} ${value ? "exists" : "is absent"}`;
  if (op === "in") return Array.isArray(value) && value.length === 1 ? `${key} = ${JSON.stringify(value[0])}` : `${key} in ${JSON.stringify(value)}`;
  if (op === "not") return `${key} not in ${JSON.stringify(value)}`;
  const sym = { gt: ">", gte: "≥", lt: "<", lte: "≤" }[op];
  return `${key} ${sym || op} ${JSON.stringify(value)}`;
}

/** Every test of one `match:` map, all of which must hold. */
function allOf(fields) {
  return Object.entries(fields).flatMap(([key, ops]) => Object.entries(ops || {}).map(([op, v]) => test(key, op, v)));
}

/** A route's condition, one test per line (`any:` lists alternatives). */
function condition(r) {
  if (r.match !== undefined) {
    const lines = allOf(r.match);
    return lines.length ? h("code", { class: "cond" }, lines.join("\nand ")) : h("span", { class: "muted" }, "every event");
  }
  if (Array.isArray(r.any)) {
    return h("code", { class: "cond" }, r.any.map((m) => allOf(m).join(" and ") || "every event").join("\nor "));
  }
  return "—";
}

function chips(names) {
  return h("span", { class: "chips" }, names.map((n) => link(route("deliveries", { target: n }), n, { class: "chip" })));
}

function paint(body, c) {
  const err = c.last_reload_error;
  fill(
    body,
    h(
      "section",
      { class: "card" },
      facts([
        // The first 12 hex digits tell versions apart, as git's short hashes do; all 64 on hover.
        ["Version", h("span", { class: "mono", "data-testid": "version", "data-version": c.version, title: `sha256 of the file: ${c.version}` }, `${String(c.version).slice(0, 12)}…`)],
        c.file ? ["File", h("span", { class: "mono break" }, c.file)] : null,
        ["Loaded", when(c.loaded_at, { "data-testid": "loaded-at" })],
        [
          "Last reload error",
          err
            ? h("div", { class: "error-box", "data-testid": "reload-error" }, when(err.at), h("pre", {}, err.message))
            : h("span", { class: "ok-text", "data-testid": "reload-error" }, "none"),
        ],
      ]),
    ),
    h("h2", {}, "Sources"),
    table(
      [
        { label: "Name", cell: (s) => h("span", { class: "strong" }, s.name) },
        { label: "Path", cell: (s) => h("code", {}, s.path) },
        { label: "Verify", cell: (s) => `${s.verify?.scheme ?? "?"} (${(s.verify?.secrets || []).length} secret${(s.verify?.secrets || []).length === 1 ? "" : "s"}, redacted)` },
        { label: "Schema", cell: (s) => `${s.schema ?? "—"}${s.strict ? ", strict" : ""}` },
      ],
      c.sources || [],
      { "data-testid": "sources" },
    ),
    h("h2", {}, "Targets"),
    table(
      [
        { label: "Name", cell: (t) => h("span", { class: "strong" }, t.name) },
        { label: "Kind", cell: (t) => h("span", { class: "chips" }, h("span", { class: "chip" }, t.kind), t.enabled ? null : h("span", { class: "chip chip-muted" }, "disabled")) },
        { label: "Sends to", cell: destination, class: "wide" },
        { label: "Timeout", cell: (t) => ms(t.timeout_ms) },
        { label: "Retry", cell: (t) => retry(t.retry) },
        { label: "Limits", cell: limits },
        {
          label: "Other",
          cell: (t) =>
            details(t, ["name", "kind", "enabled", "timeout_ms", "retry", "url", "method", "webhook_url", "to", "path", "rate_limit", "circuit_breaker", "concurrency"]),
        },
      ],
      c.targets || [],
      { "data-testid": "config-targets" },
    ),
    h("h2", {}, "Routes"),
    table(
      [
        { label: "#", cell: (r) => String(r.__i), class: "num" },
        { label: "Name", cell: (r) => h("span", { class: "strong" }, r.name) },
        { label: "Condition", cell: condition, class: "wide" },
        { label: "Targets", cell: (r) => chips(r.targets || []) },
        { label: "Stop", cell: (r) => (r.stop ? "stop" : h("span", { class: "muted" }, "—")) },
      ],
      (c.routes || []).map((r, i) => ({ ...r, __i: i })),
      { "data-testid": "routes" },
    ),
    c.unmatched ? h("p", {}, h("strong", {}, "Unmatched events go to: "), c.unmatched.length ? chips(c.unmatched) : h("span", { class: "muted" }, "nothing (kept, not delivered)")) : null,
    h("details", { class: "raw" }, h("summary", {}, "The answer as JSON"), h("pre", { class: "json" }, pretty(c))),
  );
}

export default {
  title: "Config",
  async render(main, ctx) {
    const body = h("div", {}, h("p", { class: "muted loading" }, "Loading…"));
    const out = h("div", { class: "answer-slot", id: "reload-answer" });
    const load = async () => {
      const answer = await ctx.config(true);
      if (!ctx.alive()) return answer;
      if (answer.ok) paint(body, answer.body);
      else fill(body, errorBox(answer, "the config"));
      return answer;
    };
    const reload = button("Reload", { class: "primary", id: "reload", title: "Read the config file again now (POST /admin/reload)" }, async () => {
      const answer = await api.post("/admin/reload");
      if (!ctx.alive()) return;
      fill(out, answerPanel(answer));
      // 200 or 422, the running config (and its last error) may have changed.
      ctx.seen(await load());
    });
    fill(main, header("Config", "The running config, secrets redacted.", reload), out, body);
    ctx.seen(await load());
  },
};
