// The thread pane: the head (assignee, team, priority, status, labels), the messages with their
// delivery ticks, and the triage pickers. Message statuses never move backwards on screen.
import { reported } from "../forms.js";
import { $, api, avatar, channelIcon, clock, el, icon } from "../ui.js";
import { closeTemplates } from "./composer.js";
import { loadContext } from "./contact.js";
import { matches, renderList } from "./list.js";
import { announce, renderPresence } from "./live.js";
import { attachment } from "./media.js";
import { readConversation } from "./notify.js";
import { picker } from "./picker.js";
import { chooseSnoozeTime, readable } from "./snooze-at.js";
import { agentName, byInstant, canTake, channelOf, fillSelect, instant, S, shownName } from "./state.js";

// ---- thread ------------------------------------------------------------------------------
const TICKS = {
  queued: ["🕓", "queued"],
  sent: ["✓", "sent"],
  delivered: ["✓✓", "delivered"],
  read: ["✓✓", "read"],
  failed: ["!", "failed"],
  received: ["", ""],
};

// A shown status never moves backwards (the server's rule, domain/enums.py
// status_moves_forward): the POST answer "queued" may arrive after the live "sent" event.
const RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };
function statusMayReplace(known, next) {
  const [cur, now] = [known.status, next.status];
  if (cur === now || !(cur in RANK || cur === "failed")) return true;
  if (now === "failed") return cur === "queued" || cur === "sent";
  // A retry puts a failed message back in the queue; only a newer record says so.
  if (cur === "failed")
    return (
      now === "delivered" ||
      now === "read" ||
      (now === "queued" && instant(next.updated_at) > instant(known.updated_at))
    );
  return now in RANK && RANK[now] > RANK[cur];
}

// Every message the page learns of (list, POST answers, live events) goes through here.
export function putMessage(m) {
  const known = S.messages.get(m.id);
  if (known) {
    // Status updates carry the message without its attachments: keep the ones shown.
    if (!(m.attachments || []).length && (known.attachments || []).length) m.attachments = known.attachments;
    if (!statusMayReplace(known, m)) {
      m.status = known.status;
      m.error_code = known.error_code;
      m.error_reason = known.error_reason;
    }
  }
  S.messages.set(m.id, m);
}

function withMentions(text, mentions) {
  // Split on @words and mark those that named a mentioned agent; all pieces are text nodes.
  const frag = document.createDocumentFragment();
  const names = new Set((mentions || []).map((id) => agentName(id).toLowerCase().replace(/\s+/g, "")));
  const firsts = new Set((mentions || []).map((id) => agentName(id).toLowerCase().split(/\s+/)[0]));
  let last = 0;
  for (const m of text.matchAll(/@([\w][\w.-]*)/g)) {
    frag.append(text.slice(last, m.index));
    const h = m[1].toLowerCase();
    frag.append(names.has(h) || firsts.has(h) ? el("span", { class: "mention" }, m[0]) : m[0]);
    last = m.index + m[0].length;
  }
  frag.append(text.slice(last));
  return frag;
}

function bubble(m) {
  if (m.kind === "system") {
    return el(
      "li",
      { class: "sys", id: `m${m.id}`, dataset: { id: m.id } },
      el("span", null, m.body || ""),
      el("time", { datetime: m.sent_at }, clock(m.sent_at)),
    );
  }
  if (m.kind === "reaction") {
    const target = m.reply_to_id && S.messages.get(m.reply_to_id);
    return el(
      "li",
      { class: `reaction ${m.direction}`, id: `m${m.id}`, dataset: { id: m.id } },
      el("span", { class: "emoji" }, m.body || "♡"),
      " reacted",
      target ? el("span", { class: "muted" }, ` to “${(target.body || "").slice(0, 60)}”`) : null,
    );
  }
  const ch = m.channel_id ? channelOf(m.channel_id) : null;
  const isNote = m.kind === "note";
  const cls = `msg ${isNote ? "note" : m.direction}${m.status === "failed" ? " failed" : ""}${m.extra?.deleted_at ? " deleted" : ""}`;
  const body = el("div", { class: "body" });
  const lat = Number(m.extra?.latitude),
    lon = Number(m.extra?.longitude);
  if (m.kind === "location" && Number.isFinite(lat) && Number.isFinite(lon)) {
    // Only numbers go into the link; a provider-given URL is never used as an href.
    body.append(
      "📍 ",
      m.body || "Location",
      el("br"),
      el(
        "a",
        {
          href: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`,
          target: "_blank",
          rel: "noopener noreferrer",
        },
        `${lat.toFixed(5)}, ${lon.toFixed(5)}`,
      ),
    );
  } else if (isNote) body.append(withMentions(m.body || "", m.extra?.mentions));
  else if (m.body) body.append(m.body);
  else if (!(m.attachments || []).length) body.append(el("em", { class: "muted" }, `[${m.kind}]`));
  const quoted = m.reply_to_id && S.messages.get(m.reply_to_id);
  const atts = (m.attachments || []).map((a) => attachment(a, m));
  const meta = el("div", { class: "meta" });
  if (isNote) meta.append(el("span", { class: "note-tag" }, "Private note"), " · ", agentName(m.sender_agent_id));
  else {
    if (ch) meta.append(channelIcon(ch.kind, ch.name), " ");
    if (m.direction === "out" && m.sender_agent_id) meta.append(agentName(m.sender_agent_id), " · ");
  }
  const extra = m.extra || {};
  if (extra.edited_at) {
    const before = (extra.edits || []).map((e) => (e && (e.previous ?? e.text ?? e.body)) || "").filter(Boolean);
    meta.append(
      el("span", { class: "edited", title: before.length ? `Before: ${before.join(" | ")}` : "" }, "edited"),
      " · ",
    );
  }
  if (extra.deleted_at) meta.append(el("span", { class: "deleted-tag" }, "deleted by the sender"), " · ");
  meta.append(el("time", { datetime: m.sent_at, title: m.sent_at }, clock(m.sent_at)));
  if (m.direction === "out" && !isNote) {
    const [sym, label] = TICKS[m.status] || ["", m.status];
    meta.append(" ", el("span", { class: `tick tick-${m.status}`, title: label, dataset: { status: m.status } }, sym));
  }
  const li = el(
    "li",
    { class: cls, id: `m${m.id}`, dataset: { id: m.id, status: m.status } },
    quoted ? el("blockquote", null, (quoted.body || "").slice(0, 140)) : null,
    body,
    ...atts,
    meta,
  );
  if (m.status === "failed") {
    li.append(
      el(
        "div",
        { class: "fail" },
        el("span", { class: "reason" }, m.error_reason || "Not delivered."),
        el("button", { type: "button", class: "retry", onclick: () => retry(m.id) }, "Retry"),
      ),
    );
  }
  return li;
}

// A thread opens at its newest message and stays there while images and videos load (they
// grow the list after the first layout), until the agent scrolls up to read.
let stick = false;
const toBottom = () => {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
};
export function renderMessages() {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const sorted = [...S.messages.values()].sort((a, b) => byInstant(a, b, "sent_at"));
  box.replaceChildren(...sorted.map(bubble));
  if (box.dataset.fresh) stick = true;
  if (atBottom || stick) {
    toBottom();
    delete box.dataset.fresh;
  }
}
function wireStick() {
  const box = $("messages");
  // load/loadedmetadata do not bubble: listen in the capture phase.
  for (const t of ["load", "loadedmetadata"]) box.addEventListener(t, () => stick && toBottom(), true);
  box.addEventListener("wheel", (ev) => {
    if (ev.deltaY < 0) stick = false;
  });
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "PageUp" || ev.key === "ArrowUp" || ev.key === "Home") stick = false;
  });
  box.addEventListener("touchmove", () => {
    stick = false;
  });
  box.addEventListener("scroll", () => {
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 4) stick = true;
  });
  if ("ResizeObserver" in window) new ResizeObserver(() => stick && toBottom()).observe(box);
}

export function fillAssignees() {
  const c = S.conv;
  fillSelect(
    "t-assignee",
    "Unassigned",
    S.boot.agents.filter((a) => a.active && (!c || canTake(a, c) || a.id === c.assignee_id)),
  );
}

export function renderHead(c) {
  S.conv = c;
  fillAssignees();
  $("t-name").textContent = shownName(c);
  $("t-name").title = shownName(c);
  $("t-avatar").replaceChildren(avatar(shownName(c), c.contact_picture_url, "lg"));
  const inbox = S.boot.inboxes.find((i) => i.id === c.inbox_id);
  const meta = $("t-meta");
  meta.replaceChildren(el("span", { class: "conv-no" }, `#${c.id}`));
  if (inbox) meta.append(" · ", el("span", { title: "Inbox" }, icon("inbox"), " ", inbox.name));
  if (c.channel_name) meta.append(" · last via ", channelIcon(c.channel_kind, c.channel_name), " ", c.channel_name);
  $("t-status").value = c.status;
  $("t-priority").value = c.priority || "none";
  $("t-assignee").value = c.assignee_id === null ? "" : String(c.assignee_id);
  $("t-team").value = c.team_id == null ? "" : String(c.team_id);
  $("t-resolve-text").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
  $("t-labels").replaceChildren(
    ...(c.labels || []).map((n) => el("span", { class: "label" }, n)),
    el("button", { type: "button", class: "link", onclick: () => pickLabel() }, "+ label"),
  );
}

export async function openConversation(id) {
  if (S.current && S.current !== id) announce(S.current, "left");
  S.current = id;
  S.selected = id;
  if (location.hash !== `#c/${id}`) history.replaceState(null, "", `#c/${id}`);
  renderList();
  document.querySelector(".panes").classList.add("thread-open");
  $("thread-empty").hidden = true;
  $("thread").hidden = true;
  $("contact-pane").replaceChildren();
  let c;
  try {
    c = await api(`/ui/conversations/${id}`);
  } catch (e) {
    if (S.current !== id) return;
    S.current = null;
    $("thread-empty").hidden = false;
    $("thread-empty").textContent =
      e.status === 404
        ? "Conversation not found — it does not exist or is in an inbox you are not a member of."
        : `Could not open the conversation: ${e.message}`;
    return;
  }
  const page = await api(`/conversations/${id}/messages?limit=200`);
  if (S.current !== id) return;
  S.messages = new Map(page.data.map((m) => [m.id, m]));
  S.typingSince = null;
  S.othersRepliedSince = null;
  $("c-warning").hidden = true;
  closeTemplates();
  $("thread").hidden = false;
  renderHead(c);
  $("messages").dataset.fresh = "1";
  renderMessages();
  renderPresence();
  await loadContext();
  if (c.unread_count) {
    const row = S.convs.get(id);
    if (row) {
      row.unread_count = 0;
      renderList();
    }
    api(`/ui/conversations/${id}/read`, { method: "POST" }).catch(() => {});
  }
  announce(id, "viewing");
  readConversation(id);
}

async function retry(messageId) {
  await reported($("c-error"), async () => {
    const m = await api(`/ui/messages/${messageId}/retry`, { method: "POST" });
    putMessage(m);
    renderMessages();
  });
}

// ---- triage ------------------------------------------------------------------------------
export async function patch(body) {
  if (!S.current) return;
  await reported($("c-error"), async () => {
    const c = await api(`/ui/conversations/${S.current}`, { method: "PATCH", json: body });
    if (matches(c)) S.convs.set(c.id, c);
    else S.convs.delete(c.id);
    renderList();
    renderHead(c);
  });
}

export function toggleResolve() {
  if (!S.conv) return;
  patch({ status: S.conv.status === "resolved" ? "open" : "resolved" });
}

export function pickAssignee() {
  if (!S.current) return;
  const c = S.conv || {};
  const items = [
    { label: "Unassigned", value: null, on: c.assignee_id == null },
    ...S.boot.agents
      .filter((a) => canTake(a, c))
      .map((a) => ({
        label: a.name + (a.id === S.boot.me.id ? " (me)" : ""),
        value: a.id,
        on: c.assignee_id === a.id,
      })),
  ];
  picker("Assign to", items, (it) => patch({ assignee_id: it.value }));
}

export function pickLabel() {
  if (!S.current) return;
  const have = new Set(S.conv?.labels || []);
  const items = S.boot.labels.map((l) => ({ label: l.name, value: l.name, on: have.has(l.name) }));
  for (const name of have) if (!items.some((i) => i.value === name)) items.push({ label: name, value: name, on: true });
  picker(
    "Toggle label",
    items,
    (it) => {
      const next = new Set(have);
      if (next.has(it.value)) next.delete(it.value);
      else next.add(it.value);
      patch({ labels: [...next] });
    },
    true,
  );
}

export function pickSnooze() {
  if (!S.current) return;
  const at = (hours) => new Date(Date.now() + hours * 3600 * 1000);
  const tomorrow = new Date();
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(9, 0, 0, 0);
  const monday = new Date();
  monday.setDate(monday.getDate() + ((8 - monday.getDay()) % 7 || 7));
  monday.setHours(9, 0, 0, 0);
  picker(
    "Snooze until",
    [
      { label: `1 hour · ${readable(at(1))}`, value: at(1) },
      { label: `4 hours · ${readable(at(4))}`, value: at(4) },
      { label: `Tomorrow · ${readable(tomorrow)}`, value: tomorrow },
      { label: `Next Monday · ${readable(monday)}`, value: monday },
      { label: "Pick a date and time…", value: null },
    ],
    (it) =>
      it.value
        ? patch({ snoozed_until: it.value.toISOString() })
        : chooseSnoozeTime((d) => patch({ snoozed_until: d.toISOString() })),
  );
}

export function wireThread() {
  wireStick();
  // Narrow screens show the list or the thread.
  $("t-back").addEventListener("click", () =>
    document.querySelector(".panes").classList.remove("thread-open", "contact-open"),
  );
  $("t-status").addEventListener("change", () => {
    if ($("t-status").value === "snoozed") {
      $("t-status").value = S.conv.status;
      pickSnooze();
    } else patch({ status: $("t-status").value });
  });
  $("t-priority").addEventListener("change", () => patch({ priority: $("t-priority").value }));
  $("t-assignee").addEventListener("change", () =>
    patch({ assignee_id: $("t-assignee").value ? Number($("t-assignee").value) : null }),
  );
  $("t-team").addEventListener("change", () =>
    patch({ team_id: $("t-team").value ? Number($("t-team").value) : null }),
  );
  $("t-resolve").addEventListener("click", toggleResolve);
}
