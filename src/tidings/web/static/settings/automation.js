// Settings → Automation (rule builder, dry run, recent runs) and Business hours (per inbox,
// with the away message and greeting). The action rows and their vocabulary are shared with the
// macro editor (settings/macros.js). Data reaches the page only through el() (textContent
// and attributes), never as HTML.

import { errorBox, field, grid, guarded, onSubmit, options, row } from "../forms.js";
import { api, clock, confirmAction, el, pageHead } from "../ui.js";
import { dayRow, timeZonePicker } from "./edits.js";

const EVENTS = [
  ["message.received", "A customer message arrives"],
  ["conversation.created", "A conversation is created"],
  ["conversation.updated", "A conversation is changed (status, assignee, labels…)"],
  ["window.closing", "N minutes before a service window closes"],
  ["no_reply", "No agent reply for N minutes"],
];
const TIMED = new Set(["window.closing", "no_reply"]);
const PRIORITIES = ["none", "low", "medium", "high", "urgent"];
const DAYS = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];

const words = (s) =>
  s
    .split(",")
    .map((w) => w.trim())
    .filter(Boolean);

// The condition and action kinds come from the server's registry (GET /automation/kinds);
// this page only knows how to draw each kind's parameters (CONDITION_PARAMS, ACTION_PARAMS).
export async function vocabulary() {
  const [agents, teams, inboxes, kinds, boot, templates, rules] = await Promise.all([
    api("/admin/agents"),
    api("/admin/teams"),
    api("/admin/inboxes"),
    api("/admin/channel_kinds"),
    api("/ui/bootstrap"),
    api("/admin/templates"),
    api("/automation/kinds"),
  ]);
  const pairs = (list) => list.map((k) => [k.type, k.label]);
  return {
    agents,
    teams,
    inboxes,
    kinds,
    canned: boot.canned_replies || [],
    templates,
    conditions: pairs(rules.conditions),
    actions: pairs(rules.actions),
    macroActions: pairs(rules.actions.filter((k) => k.macro)),
  };
}

// ---- one condition / action row: inputs by type, read back into the API's JSON ----------------
// Each kind's parameters: (vocabulary, current values) → [nodes, read()]. The kinds themselves
// (and their labels) are the server's; tests/web/test_automation_kinds.py keeps these keys equal.
const picker = (cls, pairs, current) => el("select", { class: cls }, ...options(pairs, current));
const wordsInput = (cur, placeholder) => {
  const input = el("input", { class: "cond-value", value: (cur.values || []).join(", "), placeholder });
  return [[input], () => ({ values: words(input.value) })];
};
const textInput = (cls, value, placeholder, key) => {
  const input = el("input", { class: cls, value: value || "", placeholder });
  return [[input], () => ({ [key]: input.value })];
};
// A <select> of `pairs` with `current` chosen; read(value) gives the API's JSON for it.
const selectInput = (cls, pairs, current, read) => {
  const sel = picker(cls, pairs, current);
  return [[sel], () => read(sel.value)];
};
const idPicker = (list, label, current, key) =>
  selectInput(
    "act-value",
    list.map((x) => [x.id, label(x)]),
    current,
    (id) => ({ [key]: Number(id) }),
  );

const CONDITION_PARAMS = {
  text_contains: (_v, cur) => wordsInput(cur, "refund, money back"),
  language: (_v, cur) => wordsInput(cur, "en, es"),
  text_matches: (_v, cur) => textInput("cond-value", cur.pattern, "order\\s+#?\\d+", "pattern"),
  channel_kind: (v, cur) =>
    selectInput(
      "cond-value",
      v.kinds.map((k) => [k.kind, k.label]),
      (cur.values || [])[0],
      (kind) => ({ values: [kind] }),
    ),
  inbox: (v, cur) =>
    selectInput(
      "cond-value",
      v.inboxes.map((i) => [i.id, i.name]),
      (cur.values || [])[0],
      (id) => ({ values: [Number(id)] }),
    ),
  contact_attribute: (_v, cur) => {
    const key = el("input", { class: "cond-key", value: cur.key || "", placeholder: "tier" });
    const val = el("input", {
      class: "cond-value",
      value: cur.value == null ? "" : String(cur.value),
      placeholder: "gold",
    });
    return [[key, " = ", val], () => ({ key: key.value, value: val.value })];
  },
  label: (_v, cur) => textInput("cond-value", cur.name, "vip", "name"),
  business_hours: (_v, cur) => {
    const inside = [
      ["true", "inside business hours"],
      ["false", "outside business hours"],
    ];
    return selectInput("cond-value", inside, String(cur.inside !== false), (x) => ({ inside: x === "true" }));
  },
};

const ACTION_PARAMS = {
  add_label: (_v, cur) => textInput("act-value", cur.name, "vip", "name"),
  assign_agent: (v, cur) => idPicker(v.agents, (x) => `${x.name} <${x.email}>`, cur.agent_id, "agent_id"),
  assign_team: (v, cur) => idPicker(v.teams, (x) => x.name, cur.team_id, "team_id"),
  set_priority: (_v, cur) =>
    selectInput(
      "act-value",
      PRIORITIES.map((p) => [p, p]),
      cur.priority,
      (priority) => ({ priority }),
    ),
  snooze: (_v, cur) => {
    const value = cur.minutes ? String(cur.minutes) : "60";
    const minutes = el("input", { class: "act-value", type: "number", min: "1", value });
    const untilOpen = el("input", { type: "checkbox", class: "act-until", checked: cur.until === "next_opening" });
    return [
      [minutes, " minutes, or ", el("label", null, untilOpen, " until business hours open")],
      () => (untilOpen.checked ? { until: "next_opening" } : { minutes: Number(minutes.value) }),
    ];
  },
  send_canned_reply: (v, cur) => idPicker(v.canned, (x) => `/${x.short_code}`, cur.canned_reply_id, "canned_reply_id"),
  send_template: (v, cur) => {
    const [[sel], read] = idPicker(
      v.templates,
      (x) => `${x.name} (${x.language}, ${x.channel_name})`,
      cur.template_id,
      "template_id",
    );
    const p = el("input", {
      class: "act-params",
      value: (cur.params || []).join(", "),
      placeholder: "parameters, comma-separated",
    });
    return [[sel, p], () => ({ ...read(), params: words(p.value) })];
  },
  add_note: (_v, cur) => textInput("act-value", cur.text, "Note for the team", "text"),
  webhook: (_v, cur) => {
    const url = el("input", { class: "act-value", value: cur.url || "", placeholder: "https://example.com/hook" });
    const secret = el("input", {
      class: "act-secret",
      type: "password",
      autocomplete: "off",
      placeholder: cur.has_secret ? "(unchanged)" : "signing secret (optional)",
    });
    return [[url, secret], () => ({ url: url.value, ...(secret.value ? { secret: secret.value } : {}) })];
  },
  resolve: () => [[], () => ({})],
};

// A kind picker and its parameters, redrawn when the kind changes; `row.readValue()` gives the
// API's JSON for it.
function kindRow(row, v, current, kinds, drawers, typeClass, label) {
  const type = el("select", { class: typeClass, "aria-label": label }, ...options(kinds, current.type));
  const params = el("span", { class: "params" });
  let read = () => ({});
  const draw = (cur) => {
    const [nodes, reader] = (drawers[type.value] || (() => [[], () => ({})]))(v, cur);
    params.replaceChildren(...nodes);
    read = reader;
  };
  type.addEventListener("change", () => draw({}));
  draw(current);
  row.readValue = () => ({ type: type.value, ...read() });
  return [type, params, el("button", { type: "button", class: "remove", onclick: () => row.remove() }, "Remove")];
}

function conditionRow(v, c) {
  c = c || { type: "text_contains" };
  const row = el("div", { class: "rule-row condition" });
  const negate = el("input", { type: "checkbox", class: "cond-negate", checked: !!c.negate, "aria-label": "Not" });
  row.append(
    el("label", null, negate, " not"),
    ...kindRow(row, v, c, v.conditions, CONDITION_PARAMS, "cond-type", "Condition"),
  );
  const own = row.readValue;
  row.readValue = () => ({ ...own(), ...(negate.checked ? { negate: true } : {}) });
  return row;
}

// `macro`: offer only the kinds a macro may use (the server says which: a webhook is not one).
export function actionRow(v, a, macro = false) {
  a = a || { type: "add_label" };
  const row = el("div", { class: "rule-row action" });
  row.append(...kindRow(row, v, a, macro ? v.macroActions : v.actions, ACTION_PARAMS, "act-type", "Action"));
  return row;
}

function summary(rule) {
  const ev = (EVENTS.find(([k]) => k === rule.event) || [rule.event, rule.event])[1].replace(
    "N minutes",
    `${rule.minutes || ""} minutes`,
  );
  const conds = rule.conditions.length
    ? rule.conditions.map((c) => (c.negate ? "not " : "") + c.type).join(rule.match === "any" ? " or " : " and ")
    : "always";
  return [ev, conds, rule.actions.map((a) => a.type).join(" → ")];
}

// ---- the rules screen ---------------------------------------------------------------------------
export async function rules(main) {
  const [rulesPage, v, recent] = await Promise.all([
    api("/automation/rules"),
    vocabulary(),
    api("/automation/runs?limit=20"),
  ]);
  const list = rulesPage.data;
  const err = errorBox();
  const form = el("form", { class: "stack rule-form", id: "rule-form" });
  let editing = null;

  const name = el("input", { id: "rule-name", required: true, placeholder: "e.g. Refunds to Billing" });
  const event = el("select", { id: "rule-event" }, ...options(EVENTS));
  const minutes = el("input", { id: "rule-minutes", type: "number", min: "1", step: "any", value: "30" });
  const minutesRow = el("span", { class: "minutes" }, " N = ", minutes, " minutes");
  const match = el(
    "select",
    { id: "rule-match" },
    ...options([
      ["all", "all conditions hold"],
      ["any", "any condition holds"],
    ]),
  );
  const active = el("input", { id: "rule-active", type: "checkbox", checked: true });
  const conds = el("div", { id: "rule-conditions" });
  const acts = el("div", { id: "rule-actions" });
  const showMinutes = () => {
    minutesRow.hidden = !TIMED.has(event.value);
  };
  event.addEventListener("change", showMinutes);

  const load = (rule) => {
    editing = rule ? rule.id : null;
    name.value = rule ? rule.name : "";
    event.value = rule ? rule.event : "message.received";
    minutes.value = rule?.minutes ? String(rule.minutes) : "30";
    match.value = rule ? rule.match : "all";
    active.checked = rule ? rule.active : true;
    conds.replaceChildren(...(rule ? rule.conditions.map((c) => conditionRow(v, c)) : []));
    acts.replaceChildren(...(rule ? rule.actions : [null]).map((a) => actionRow(v, a)));
    title.textContent = rule ? `Edit rule: ${rule.name}` : "New rule";
    showMinutes();
  };
  const read = () => ({
    name: name.value,
    event: event.value,
    match: match.value,
    active: active.checked,
    ...(TIMED.has(event.value) ? { minutes: Number(minutes.value) } : {}),
    conditions: [...conds.children].map((r) => r.readValue()),
    actions: [...acts.children].map((r) => r.readValue()),
  });

  const title = el("h2", null, "New rule");
  const testConv = el("input", { id: "rule-test-conv", type: "number", min: "1", placeholder: "conversation id" });
  const testOut = el("div", { id: "rule-test-result", "aria-live": "polite" });
  form.append(
    ...field("Name", name),
    el("label", { for: "rule-event" }, "When"),
    el("div", null, event, minutesRow),
    el("label", { for: "rule-match" }, "If"),
    el("div", null, match, " ", el("label", null, active, " active")),
    el(
      "div",
      { class: "full" },
      conds,
      el(
        "button",
        { type: "button", id: "add-condition", onclick: () => conds.append(conditionRow(v)) },
        "+ Condition",
      ),
    ),
    el("label", null, "Then"),
    el(
      "div",
      { class: "full" },
      acts,
      el("button", { type: "button", id: "add-action", onclick: () => acts.append(actionRow(v)) }, "+ Action"),
    ),
    el(
      "div",
      { class: "full" },
      el("button", { class: "primary", type: "submit", id: "rule-save" }, "Save rule"),
      " ",
      el("button", { type: "button", onclick: () => load(null) }, "Clear"),
      " ",
      testConv,
      " ",
      el("button", { type: "button", id: "rule-test", onclick: () => dryRun() }, "Test on conversation (dry run)"),
    ),
    el("div", { class: "full" }, err, testOut),
  );

  async function dryRun() {
    testOut.replaceChildren();
    await guarded(err, async () => {
      const r = await api("/automation/rules/test", {
        method: "POST",
        json: { rule: read(), conversation_id: Number(testConv.value) },
      });
      testOut.append(
        el(
          "p",
          { class: r.matched ? "health-ok" : "health-bad", id: "rule-test-verdict" },
          r.matched ? "Matches: the rule would run." : "Does not match.",
        ),
        el(
          "ul",
          null,
          ...r.conditions.map((c) => el("li", null, `${(c.matched ? "✓ " : "✗ ") + c.condition.type}: ${c.detail}`)),
        ),
        el(
          "ul",
          null,
          ...r.actions.map((a) =>
            el(
              "li",
              { class: a.allowed ? "" : "health-bad" },
              (a.allowed ? "would " : "refused: ") + a.would + (a.reason ? ` — ${a.reason}` : ""),
            ),
          ),
        ),
      );
    });
  }

  onSubmit(form, err, async () => {
    await api(editing ? `/automation/rules/${editing}` : "/automation/rules", {
      method: editing ? "PUT" : "POST",
      json: read(),
    });
    main.replaceChildren();
    await rules(main);
  });

  const table = grid(
    "rules-table",
    ["Name", "When", "If", "Then", "Active", ""],
    list.map((r) =>
      row(
        { dataset: { id: r.id } },
        r.name,
        ...summary(r),
        r.active ? "yes" : "no",
        el(
          "td",
          null,
          el("button", { type: "button", onclick: () => load(r) }, "Edit"),
          " ",
          el(
            "button",
            {
              type: "button",
              onclick: async () => {
                const ok = await confirmAction({
                  title: `Delete the rule “${r.name}”?`,
                  consequences: [
                    "It stops acting on new events at once; what it already did stays.",
                    "Its run history is deleted with it. To stop it for a while, turn it off instead.",
                    "This cannot be undone.",
                  ],
                });
                if (!ok) return;
                try {
                  await api(`/automation/rules/${r.id}`, { method: "DELETE" });
                  main.replaceChildren();
                  await rules(main);
                } catch (e) {
                  err.textContent = e.message;
                }
              },
            },
            "Delete",
          ),
        ),
      ),
    ),
  );
  const runs = grid(
    "runs-table",
    ["When", "Rule", "Conversation", "Event", "Outcome"],
    recent.data.map((r) =>
      row(
        null,
        clock(r.created_at),
        r.rule_name,
        `#${r.conversation_id}`,
        r.event,
        el(
          "td",
          { class: r.state === "done" ? "health-ok" : "health-bad" },
          `${r.state + (r.error ? `: ${r.error}` : "")} — ${r.results.map((x) => `${x.action} ${x.outcome}`).join(", ")}`,
        ),
      ),
    ),
  );
  main.append(
    ...pageHead(
      "Automation",
      "Rules act like an agent would: every message they send passes the same window and consent checks, and what a rule changes never triggers rules again.",
    ),
    list.length ? table : el("p", null, "No rules yet."),
    title,
    form,
    el("h2", null, "Recent runs"),
    recent.data.length ? runs : el("p", null, "No runs yet."),
  );
  load(null);
}

// ---- business hours ----------------------------------------------------------------------------
export async function hours(main) {
  const inboxes = await api("/admin/inboxes");
  const pick = el("select", { id: "bh-inbox" }, ...options(inboxes.map((i) => [i.id, i.name])));
  const box = el("div");
  main.append(
    ...pageHead(
      "Business hours",
      "Opening hours per inbox, in its time zone. Outside them the away message is sent (once per conversation until the next opening); a first-time customer gets the greeting. Both follow each channel's window and consent rules.",
    ),
    ...field("Inbox ", pick),
    box,
  );
  const draw = async () => {
    const h = await api(`/inboxes/${pick.value}/business_hours`);
    const err = errorBox();
    const tz = el("input", { id: "bh-timezone", value: h.timezone, placeholder: "Europe/Paris" });
    timeZonePicker(tz).catch(() => {});
    const days = DAYS.map(([key, label]) => [
      key,
      el("input", {
        id: `bh-${key}`,
        value: (h.weekly[key] || []).map((p) => p.join("-")).join(", "),
        placeholder: "closed (e.g. 09:00-12:00, 13:00-17:30)",
      }),
      label,
    ]);
    const holidays = el("input", {
      id: "bh-holidays",
      value: h.holidays.join(", "),
      placeholder: "2026-12-25, 2027-01-01",
    });
    const awayOn = el("input", { id: "bh-away-on", type: "checkbox", checked: h.away_enabled });
    const away = el("textarea", { id: "bh-away", rows: "2" });
    away.value = h.away_message || "";
    const helloOn = el("input", { id: "bh-greeting-on", type: "checkbox", checked: h.greeting_enabled });
    const hello = el("textarea", { id: "bh-greeting", rows: "2" });
    hello.value = h.greeting_message || "";
    const form = el(
      "form",
      { class: "stack", id: "bh-form" },
      el(
        "p",
        { class: "full", id: "bh-status" },
        h.configured
          ? h.open_now
            ? "Open now."
            : `Closed now${h.next_opening ? `; opens ${clock(h.next_opening)}.` : "."}`
          : "No hours set: always open.",
      ),
      ...field("Time zone", tz),
      ...days.flatMap(([_k, input, label]) => [el("label", { for: input.id }, label), dayRow(input)]),
      ...field("Holidays", holidays),
      el("label", { for: "bh-away" }, "Away message"),
      el("div", null, el("label", null, awayOn, " send outside hours"), away),
      el("label", { for: "bh-greeting" }, "Greeting"),
      el("div", null, el("label", null, helloOn, " send to first-time customers"), hello),
      el(
        "div",
        { class: "full" },
        el("button", { class: "primary", type: "submit", id: "bh-save" }, "Save hours"),
        " ",
        el(
          "button",
          {
            type: "button",
            onclick: async () => {
              await api(`/inboxes/${pick.value}/business_hours`, { method: "DELETE" });
              await draw();
            },
          },
          "Remove hours",
        ),
      ),
      el("div", { class: "full" }, err),
    );
    onSubmit(form, err, async () => {
      const weekly = {};
      for (const [key, input] of days) weekly[key] = words(input.value).map((p) => p.split("-").map((x) => x.trim()));
      await api(`/inboxes/${pick.value}/business_hours`, {
        method: "PUT",
        json: {
          timezone: tz.value,
          weekly,
          holidays: words(holidays.value),
          away_enabled: awayOn.checked,
          away_message: away.value,
          greeting_enabled: helloOn.checked,
          greeting_message: hello.value,
        },
      });
      await draw();
    });
    box.replaceChildren(form);
  };
  pick.addEventListener("change", draw);
  await draw();
}
