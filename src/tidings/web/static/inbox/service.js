// Assignment, SLA and CSAT in the inbox: the SLA countdown chip of each list row, the agent's
// availability (online / away / offline), "Take next" for inboxes in take-from-queue mode, and
// the conversation's CSAT result in the thread head. Data only through el() (textContent).
import { $, api, debounce, el } from "../ui.js";

const TARGET = { first_response: "first reply", next_response: "next reply" };

function left(iso) {
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  if (s <= 0) return null;
  if (s >= 86400) return `${Math.floor(s / 86400)} d`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.max(1, Math.floor(s / 60))} min`;
}

// The list chip: "first reply in 42 min", "next reply overdue", or null (nothing due).
export function slaChip(c) {
  if (!c.sla_state || !c.sla_due_at) return null;
  const what = TARGET[c.sla_target] || "reply";
  const rest = c.sla_state === "running" ? left(c.sla_due_at) : null;
  if (!rest)
    return el(
      "span",
      { class: "window sla closed", title: `SLA breached: ${what} was due ${c.sla_due_at}` },
      `${what} overdue`,
    );
  const soon = new Date(c.sla_due_at).getTime() - Date.now() < 15 * 60 * 1000;
  return el(
    "span",
    { class: `window sla ${soon ? "closing" : "open"}`, title: `SLA: ${what} due ${c.sla_due_at}` },
    `${what} in ${rest}`,
  );
}

// ---- availability ---------------------------------------------------------------------------
async function availability() {
  const me = await api("/agents/me/availability");
  const sel = el(
    "select",
    { id: "availability", "aria-label": "Availability", title: "Your availability for auto-assignment" },
    ...["online", "away", "offline"].map((v) => el("option", { value: v }, v[0].toUpperCase() + v.slice(1))),
  );
  sel.value = me.availability;
  sel.dataset.state = me.availability;
  sel.addEventListener("change", async () => {
    try {
      const a = await api("/agents/me/availability", { method: "PUT", json: { availability: sel.value } });
      sel.dataset.state = a.availability;
    } catch (e) {
      sel.value = sel.dataset.state;
      alertLine(e.message);
    }
  });
  const who = document.querySelector(".top .who");
  if (who) who.before(sel);
}

function alertLine(text) {
  const box = $("take-status");
  if (box) box.textContent = text;
}

// ---- take next ------------------------------------------------------------------------------
let manual = [];
async function queueButtons(ctx) {
  const modes = await Promise.all(
    ctx.boot.inboxes.map(async (i) => {
      try {
        return { inbox: i, s: await api(`/inboxes/${i.id}/assignment`) };
      } catch (_e) {
        return null;
      }
    }),
  );
  manual = modes.filter((m) => m && m.s.mode === "manual").map((m) => m.inbox);
  const bar = $("queue-bar");
  if (!manual.length) {
    if (bar) bar.remove();
    return;
  }
  const buttons = manual.map((i) =>
    el(
      "button",
      { type: "button", class: "primary take-next", dataset: { inbox: i.id }, onclick: () => take(ctx, i) },
      "Take next",
    ),
  );
  const box = el(
    "div",
    { id: "queue-bar", class: "bulk" },
    ...buttons,
    el("span", { id: "take-status", class: "count", role: "status" }),
  );
  if (bar) bar.replaceWith(box);
  else $("list-pane").querySelector(".list-tools").after(box);
  await counts();
}

async function counts() {
  for (const i of manual) {
    const b = document.querySelector(`.take-next[data-inbox="${i.id}"]`);
    if (!b) continue;
    try {
      const q = await api(`/inboxes/${i.id}/queue`);
      b.textContent = `Take next${manual.length > 1 ? ` — ${i.name}` : ""} (${q.waiting} waiting)`;
      b.disabled = q.waiting === 0;
    } catch (_e) {
      /* offline */
    }
  }
}

async function take(ctx, inbox) {
  alertLine("");
  try {
    const res = await api(`/inboxes/${inbox.id}/queue/take`, { method: "POST" });
    if (!res.conversation) alertLine(`Nobody is waiting in ${inbox.name}.`);
    else {
      await ctx.reload();
      ctx.open(res.conversation.id);
    }
  } catch (e) {
    alertLine(e.message);
  }
  await counts();
}

// ---- CSAT on the open conversation ----------------------------------------------------------
async function csat() {
  const box = $("t-csat");
  const m = /^#c\/(\d+)$/.exec(location.hash);
  if (!box || !m) return;
  let res;
  try {
    res = await api(`/conversations/${m[1]}/csat`);
  } catch (_e) {
    return;
  }
  const s = res.csat;
  box.hidden = !s;
  if (!s) return;
  box.className = "csat label";
  box.textContent =
    s.state === "answered"
      ? `CSAT ${s.rating}/5`
      : s.state === "asked"
        ? "CSAT asked"
        : `CSAT not asked (${s.reason || "skipped"})`;
  box.title = s.state === "answered" ? `Rated ${s.rating} of 5 on ${s.answered_at}` : `Survey ${s.state} ${s.asked_at}`;
}

export function attachService(ctx) {
  availability().catch(() => {});
  queueButtons(ctx).catch(() => {});
  setInterval(() => {
    counts();
  }, 10000);
  const name = $("t-name");
  if (name) new MutationObserver(() => csat()).observe(name, { childList: true, characterData: true, subtree: true });
  window.addEventListener("hashchange", csat);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) counts();
  });
}

// A conversation changed somewhere: the "Take next (n waiting)" counts may have too.
export const refreshQueue = debounce(() => counts(), 300);
