// Reports page: filters, tiles, plain-SVG charts and tables over /api/v1/reports/*.
// Data reaches the page through textContent/attributes only (el()), never through HTML parsing.
import { api, el, kindOf, kinds } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const TABS = ["conversations", "channels", "agents", "service", "campaigns"];
const form = document.getElementById("report-filters");
const body = document.getElementById("report-body");
const errorBox = document.getElementById("report-error");

function tab() {
  const t = location.hash.slice(1);
  return TABS.includes(t) ? t : "conversations";
}

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

function params() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form).entries()) {
    if (k === "business_hours") p.set(k, "true");
    else if (v !== "") p.set(k, v);
  }
  return p;
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}
function pct(r) {
  return r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)} %`;
}

// Costs come exact (0.0079, 12.50); shown in the report's currency with 2 to 4 decimals.
function money(value, currency) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency: currency || "USD",
      minimumFractionDigits: 2,
      maximumFractionDigits: 4,
    }).format(n);
  } catch (_e) {
    return `${n.toFixed(Math.abs(n) > 0 && Math.abs(n) < 0.01 ? 4 : 2)} ${currency || ""}`.trim();
  }
}

// A row's name for people: the empty group and deleted things said as such, never "none".
const EMPTY = { agent: "Unassigned", team: "No team", channel: "No channel (notes, system lines)" };
function named(kind, id, name) {
  if (name) return name;
  return id === null || id === undefined || id === 0 ? EMPTY[kind] : `Deleted ${kind} #${id}`;
}

function tile(id, label, value) {
  return el(
    "div",
    { class: "tile" },
    el("span", { class: "v", id, text: String(value) }),
    el("span", { class: "k", text: label }),
  );
}

function svg(tag, attrs) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  return n;
}

// Bars per day for each series (stacked), plus optional lines; days on the x axis.
function chart(id, days, bars, lines) {
  const W = 900,
    H = 220,
    L = 40,
    B = 20,
    top = 8;
  const root = svg("svg", { class: "chart", id, viewBox: `0 0 ${W} ${H}`, role: "img" });
  const stacks = days.map((_, i) => bars.reduce((a, s) => a + (s.values[i] || 0), 0));
  const lineMax = Math.max(0, ...lines.flatMap((s) => s.values));
  const max = Math.max(1, ...stacks, lineMax);
  const y = (v) => H - B - (v / max) * (H - B - top);
  const step = (W - L) / Math.max(1, days.length);
  root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
  for (const frac of [0, 0.5, 1]) {
    const t = svg("text", { x: 2, y: y(max * frac) + 3 });
    t.textContent = String(Math.round(max * frac));
    root.append(t);
  }
  days.forEach((d, i) => {
    let base = 0;
    bars.forEach((s, k) => {
      const v = s.values[i] || 0;
      if (!v) return;
      const r = svg("rect", {
        class: s.fill ? "" : `s${s.color ?? k}`,
        x: L + i * step + 1,
        y: y(base + v),
        width: Math.max(1, step - 2),
        height: Math.max(0.5, y(base) - y(base + v)),
      });
      if (s.fill) r.style.fill = s.fill;
      const tip = svg("title", {});
      tip.textContent = `${d} ${s.name}: ${v}`;
      r.append(tip);
      root.append(r);
      base += v;
    });
    if (i % Math.ceil(days.length / 8) === 0) {
      const t = svg("text", { x: L + i * step, y: H - 6 });
      t.textContent = d.slice(5);
      root.append(t);
    }
  });
  lines.forEach((s) => {
    const pts = s.values.map((v, i) => `${L + i * step + step / 2},${y(v)}`).join(" ");
    root.append(svg("polyline", { class: `line s${s.color}`, points: pts }));
  });
  const legend = el(
    "div",
    { class: "legend" },
    ...[...bars.map((s, k) => ({ ...s, color: s.color ?? k })), ...lines].map((s) => {
      const swatch = el("i", { class: s.fill ? "" : `s${s.color}` });
      if (s.fill) swatch.style.background = s.fill;
      return el("span", {}, swatch, s.name);
    }),
  );
  return el("div", {}, root, legend);
}

// A table of `items`, one column per [heading, cell(item)]; each row's data-key is key(item).
function table(id, columns, items, key) {
  const cell = (c) => el("td", { text: c === null || c === undefined ? "—" : String(c) });
  return el(
    "table",
    { class: "data", id },
    el("thead", {}, el("tr", {}, ...columns.map(([h]) => el("th", { text: h })))),
    el(
      "tbody",
      {},
      ...items.map((it) => el("tr", { dataset: { key: key(it) } }, ...columns.map(([, f]) => cell(f(it))))),
    ),
  );
}

function conversations(r) {
  const s = r.series;
  return [
    el(
      "div",
      { class: "tiles" },
      tile("t-new", "New conversations", r.totals.new),
      tile("t-resolved", "Resolved", r.totals.resolved),
      tile("t-backlog", "Unresolved at the end", r.totals.backlog),
      tile("t-waiting", "Waiting for an agent now", r.waiting_now.conversations),
      tile("t-frt-median", "First response, median", duration(r.first_response.median_seconds)),
      tile("t-frt-p90", "First response, p90", duration(r.first_response.p90_seconds)),
      tile("t-reply-median", "Reply time, median", duration(r.reply.median_seconds)),
      tile("t-resolution-median", "Resolution, median", duration(r.resolution.median_seconds)),
      tile("t-resolution-p90", "Resolution, p90", duration(r.resolution.p90_seconds)),
    ),
    el("h2", { text: "New and resolved per day, unresolved backlog" }),
    chart(
      "chart-conversations",
      s.map((d) => d.day),
      [
        { name: "new", values: s.map((d) => d.new), color: 0 },
        { name: "resolved", values: s.map((d) => d.resolved), color: 1 },
      ],
      [{ name: "backlog", values: s.map((d) => d.backlog), color: 2 }],
    ),
  ];
}

// Every channel its own colour: hues a golden angle apart never repeat for a report's channels.
const channelColour = (k) => `hsl(${Math.round((k * 137.508) % 360)} 65% 45%)`;
// "n/a" where the channel's provider never reports that status (from /channel-kinds).
const rate = (c, status, value) => {
  const k = kindOf(c.kind);
  return k && !k.receipts.includes(status) ? "n/a" : pct(value);
};

function channels(r) {
  const ids = r.channels.map((c) => String(c.channel_id ?? 0));
  const names = Object.fromEntries(
    r.channels.map((c) => [String(c.channel_id ?? 0), named("channel", c.channel_id, c.name)]),
  );
  return [
    el(
      "div",
      { class: "tiles" },
      tile("t-messages", "Messages", r.totals.messages),
      tile("t-cost", "Cost", money(r.totals.cost, r.currency)),
      tile("t-fallbacks", "Fallbacks", r.totals.fallbacks),
      tile("t-multi", "Customers on more than one channel", r.customers.multi_channel),
    ),
    el("h2", { text: "Messages per day and channel" }),
    chart(
      "chart-channels",
      r.series.map((d) => d.day),
      ids.map((id, k) => ({ name: names[id], values: r.series.map((d) => d[id] || 0), fill: channelColour(k) })),
      [],
    ),
    el("h2", { text: "Per channel" }),
    table(
      "channels-table",
      [
        ["Channel", (c) => named("channel", c.channel_id, c.name)],
        ["In", (c) => c.messages_in],
        ["Out", (c) => c.messages_out],
        ["New conv.", (c) => c.conversations_new],
        ["Delivered", (c) => c.delivered],
        ["Read", (c) => c.read],
        ["Failed", (c) => c.failed],
        ["Delivery", (c) => rate(c, "delivered", c.delivery_rate)],
        ["Read rate", (c) => rate(c, "read", c.read_rate)],
        ["Fallback: failed", (c) => c.fallbacks.failed],
        ["Fallback: late", (c) => c.fallbacks.not_delivered_in_time],
        ["Fallback: refused", (c) => c.fallbacks.refused],
        ["Customer reply avg", (c) => duration(c.customer_reply_avg_seconds)],
        ["Cost", (c) => money(c.cost, r.currency)],
      ],
      r.channels,
      (c) => String(c.channel_id ?? 0),
    ),
    el("h2", { text: "Opt-outs per channel" }),
    table(
      "optouts-table",
      [
        ["Channel kind", (o) => o.channel_kind],
        ["Customers", (o) => o.contacts],
      ],
      r.opt_outs,
      (o) => o.channel_kind,
    ),
    el("h2", { text: "Where multi-channel customers answer fastest" }),
    table(
      "fastest-table",
      [
        ["Channel", (f) => named("channel", f.channel_id, f.name)],
        ["Customers", (f) => f.customers],
      ],
      r.customers.fastest_channel,
      (f) => String(f.channel_id),
    ),
  ];
}

function agents(r) {
  const columns = (kind) => [
    ["", (a) => named(kind, a[`${kind}_id`], a.name)],
    ["Conversations", (a) => a.conversations],
    ["Resolved", (a) => a.resolved],
    ["First response median", (a) => duration(a.first_response.median_seconds)],
    ["p90", (a) => duration(a.first_response.p90_seconds)],
    ["Resolution median", (a) => duration(a.resolution.median_seconds)],
    ["Open now", (a) => a.open_now],
  ];
  const key = (kind) => (a) => String(a[`${kind}_id`] ?? "none");
  return [
    el("h2", { text: "Agents" }),
    table("agents-table", columns("agent"), r.agents, key("agent")),
    el("h2", { text: "Teams" }),
    table("teams-table", columns("team"), r.teams, key("team")),
  ];
}

function campaigns(r) {
  if (!r.campaigns.length)
    return [el("p", { class: "muted", id: "no-campaigns", text: "No campaign was launched in this range." })];
  return [
    table(
      "campaigns-table",
      [
        ["Campaign", (c) => c.name],
        ["State", (c) => c.state],
        ["Recipients", (c) => c.counts.total],
        ["Delivered", (c) => c.counts.delivered],
        ["Read", (c) => c.counts.read],
        ["Failed", (c) => c.counts.failed],
        ["Delivery", (c) => rate(c, "delivered", c.delivery_rate)],
        ["Read rate", (c) => rate(c, "read", c.read_rate)],
        ["Replies", (c) => c.replies],
        ["Opt-outs", (c) => c.opt_outs],
        ["Fallbacks", (c) => c.fallbacks],
        ["Cost", (c) => money(c.cost, r.currency)],
      ],
      r.campaigns,
      (c) => String(c.campaign_id),
    ),
  ];
}

function service(r) {
  const c = r.csat;
  const sla = r.sla;
  const average = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(1)} / 5`);
  return [
    el("h2", { text: "Customer satisfaction (CSAT)" }),
    el(
      "div",
      { class: "tiles", id: "csat-tiles" },
      tile("t-csat-average", "Average rating", average(c.average)),
      tile("t-csat-satisfied", "Satisfied (4 or 5)", pct(c.satisfied_share)),
      tile("t-csat-answered", "Answers", c.answered),
      tile("t-csat-rate", "Response rate", pct(c.response_rate)),
      tile("t-csat-skipped", "Surveys not sent (window, consent)", c.skipped),
    ),
    table(
      "csat-distribution",
      [
        ["Rating", (k) => k],
        ["Answers", (k) => c.distribution[k]],
      ],
      ["5", "4", "3", "2", "1"],
      (k) => k,
    ),
    el("h2", { text: "Service levels (SLA)" }),
    el(
      "div",
      { class: "tiles", id: "sla-tiles" },
      tile("t-sla-breaches", "Missed targets", sla.breaches),
      tile("t-sla-conversations", "Conversations that missed one", sla.conversations),
      tile("t-sla-first", "First response missed", sla.first_response),
      tile("t-sla-next", "Next response missed", sla.next_response),
      tile("t-sla-late", "Answered late", sla.answered_late),
      tile("t-sla-unanswered", "Still unanswered", sla.unanswered),
    ),
    el("h2", { text: "Missed targets and CSAT answers per day" }),
    chart(
      "chart-service",
      r.series.map((d) => d.day),
      [
        { name: "missed SLA targets", values: r.series.map((d) => d.sla_breaches), color: 3 },
        { name: "CSAT answers", values: r.series.map((d) => d.answered), color: 1 },
      ],
      [],
    ),
    el("h2", { text: "Per agent" }),
    r.agents.length
      ? table(
          "service-agents-table",
          [
            ["Agent", (a) => named("agent", a.agent_id, a.name)],
            ["CSAT answers", (a) => a.answered],
            ["Average", (a) => average(a.average)],
            ["Satisfied", (a) => pct(a.satisfied_share)],
            ["Missed SLA targets", (a) => a.sla_breaches],
          ],
          r.agents,
          (a) => String(a.agent_id ?? "none"),
        )
      : el("p", {
          class: "muted",
          id: "no-service",
          text: "No survey answers or missed targets in this range. Turn on CSAT and SLA targets per inbox in Settings → Assignment, SLA & CSAT.",
        }),
  ];
}

const RENDER = { conversations, channels, agents, service, campaigns };

async function load() {
  const t = tab();
  for (const a of document.querySelectorAll("nav.side a")) a.toggleAttribute("aria-current", a.dataset.tab === t);
  const p = params();
  document.getElementById("export-report").href = `/api/v1/reports/${t}?${p}&format=csv`;
  document.getElementById("export-conversations").href = `/api/v1/reports/export/conversations.csv?${p}`;
  document.body.dataset.ready = "0";
  try {
    const r = await api(`/reports/${t}?${p}`);
    errorBox.hidden = true;
    body.replaceChildren(...RENDER[t](r));
  } catch (e) {
    errorBox.textContent = e.message;
    errorBox.hidden = false;
    body.replaceChildren();
  }
  document.body.dataset.ready = "1";
}

function fill(select, items) {
  for (const it of items) select.append(el("option", { value: String(it.id), text: it.name }));
}

async function init() {
  const today = new Date();
  document.getElementById("f-to").value = isoDay(today);
  document.getElementById("f-from").value = isoDay(new Date(today.getTime() - 29 * 86400000));
  const [o] = await Promise.all([api("/reports/options"), kinds()]);
  fill(document.getElementById("f-inbox"), o.inboxes);
  fill(document.getElementById("f-channel"), o.channels);
  fill(document.getElementById("f-team"), o.teams);
  fill(document.getElementById("f-agent"), o.agents);
  fill(document.getElementById("f-label"), o.labels);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  window.addEventListener("hashchange", load);
  await load();
}

init();
