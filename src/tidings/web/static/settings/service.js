// Settings › Assignment, SLA & CSAT: one form per inbox over /api/v1/inboxes/{id}/assignment,
// /sla and /csat. Times are entered in minutes and stored in seconds. Data only through el().
import { errorBox, onSubmit, options, field as row } from "../forms.js";
import { api, el, pageHead } from "../ui.js";

const MODES = [
  ["off", "Off (assign by hand)"],
  ["round_robin", "Round robin"],
  ["least_busy", "Least busy"],
  ["manual", "Take from queue"],
];
const PRIORITIES = ["urgent", "high", "medium", "low"];

const minutes = (secs) => (secs == null ? "" : String(Math.round(secs / 60)));
const seconds = (input) => (input.value === "" ? null : Math.round(Number(input.value) * 60));
const num = (id, value, label) =>
  el("input", { id, type: "number", min: "1", step: "1", value, "aria-label": label, placeholder: "none" });

async function inboxForm(inbox, agents, templates) {
  const [a, s, c] = await Promise.all([
    api(`/inboxes/${inbox.id}/assignment`),
    api(`/inboxes/${inbox.id}/sla`),
    api(`/inboxes/${inbox.id}/csat`),
  ]);
  const p = `svc-${inbox.id}-`;
  const mode = el("select", { id: `${p}mode`, "aria-label": "Assignment mode" }, ...options(MODES));
  mode.value = a.mode;
  const capacity = num(`${p}capacity`, a.capacity == null ? "" : String(a.capacity), "Capacity per agent");
  const members = agents.filter((x) => inbox.agent_ids.includes(x.id));
  const own = members.map((x) =>
    num(
      `${p}cap-${x.id}`,
      a.agent_capacities[String(x.id)] == null ? "" : String(a.agent_capacities[String(x.id)]),
      `Capacity of ${x.name}`,
    ),
  );
  const first = num(`${p}first`, minutes(s.first_response_seconds), "First response target (minutes)");
  const next = num(`${p}next`, minutes(s.next_response_seconds), "Next response target (minutes)");
  const prio = PRIORITIES.map((name) => {
    const t = s.by_priority[name] || {};
    return {
      name,
      first: num(`${p}pf-${name}`, minutes(t.first_response_seconds), `${name} first response (minutes)`),
      next: num(`${p}pn-${name}`, minutes(t.next_response_seconds), `${name} next response (minutes)`),
    };
  });
  const enabled = el("input", { id: `${p}csat`, type: "checkbox", checked: c.enabled });
  const question = el("textarea", { id: `${p}question`, rows: "2", "aria-label": "CSAT question" });
  question.value = c.question;
  const tpl = el(
    "select",
    { id: `${p}template`, "aria-label": "CSAT template" },
    el("option", { value: "" }, "None (skip when the window is closed)"),
    ...templates
      .filter((t) => t.inbox_id === inbox.id)
      .map((t) => el("option", { value: String(t.id) }, `${t.channel_name} · ${t.name} (${t.language}, ${t.status})`)),
  );
  tpl.value = c.template_id == null ? "" : String(c.template_id);
  const err = errorBox();
  const ok = el("span", { class: "muted", role: "status" });
  const form = el(
    "form",
    { class: "stack group", id: `${p}form`, dataset: { inbox: inbox.id } },
    el("h2", { class: "full" }, inbox.name),
    el("h3", { class: "full" }, "Assignment"),
    ...row(
      "Mode",
      mode,
      "Round robin and least busy assign new and reopened conversations to online members; take from queue lets agents press “Take next”.",
    ),
    ...row(
      "Capacity",
      capacity,
      "Open conversations per agent in this inbox; empty: no limit. When everyone is full, conversations wait in the queue.",
    ),
    ...members.flatMap((x, i) => row(`${x.name}'s capacity`, own[i], "Empty: the inbox's capacity.")),
    el("h3", { class: "full" }, "SLA targets (minutes)"),
    ...row("First response", first),
    ...row("Next response", next),
    ...prio.flatMap((x) => [...row(`${x.name}: first`, x.first), ...row(`${x.name}: next`, x.next)]),
    el("h3", { class: "full" }, "Customer satisfaction (CSAT)"),
    ...row("Ask after resolving", enabled),
    ...row("Question", question, "Sent as text while the service window is open; the customer answers 1–5."),
    ...row("Template when closed", tpl, "An approved template without parameters."),
    el("div", { class: "full" }, el("button", { class: "primary", type: "submit" }, "Save"), " ", ok),
    el("div", { class: "full" }, err),
  );
  onSubmit(form, err, async () => {
    ok.textContent = "";
    const caps = {};
    members.forEach((x, i) => {
      caps[String(x.id)] = own[i].value === "" ? null : Number(own[i].value);
    });
    await api(`/inboxes/${inbox.id}/assignment`, {
      method: "PUT",
      json: {
        mode: mode.value,
        capacity: capacity.value === "" ? null : Number(capacity.value),
        agent_capacities: caps,
      },
    });
    const byPriority = {};
    for (const x of prio) {
      const t = {};
      if (x.first.value !== "") t.first_response_seconds = seconds(x.first);
      if (x.next.value !== "") t.next_response_seconds = seconds(x.next);
      if (Object.keys(t).length) byPriority[x.name] = t;
    }
    await api(`/inboxes/${inbox.id}/sla`, {
      method: "PUT",
      json: { first_response_seconds: seconds(first), next_response_seconds: seconds(next), by_priority: byPriority },
    });
    await api(`/inboxes/${inbox.id}/csat`, {
      method: "PUT",
      json: {
        enabled: enabled.checked,
        question: question.value,
        template_id: tpl.value === "" ? null : Number(tpl.value),
      },
    });
    ok.textContent = "Saved.";
  });
  return form;
}

export async function renderService(main) {
  const [inboxes, agents, templates, channels] = await Promise.all([
    api("/admin/inboxes"),
    api("/admin/agents"),
    api("/admin/templates"),
    api("/channels"),
  ]);
  const inboxOf = new Map(channels.map((ch) => [ch.id, ch.inbox_id]));
  const tpls = templates.map((t) => ({ ...t, inbox_id: inboxOf.get(t.channel_id) }));
  const forms = [];
  for (const inbox of inboxes) forms.push(await inboxForm(inbox, agents, tpls));
  main.append(
    ...pageHead(
      "Assignment, SLA & CSAT",
      "Per inbox: how conversations are handed out, the response times the team commits to (shown as countdowns in the inbox list; misses are recorded as breaches), and the satisfaction question sent after a conversation is resolved.",
    ),
    ...forms,
  );
}
