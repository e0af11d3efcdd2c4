// The inbox page's shared state (what is loaded, open, selected, picked) and the small lookups
// every pane uses. One object, imported by the pane modules; nothing here touches the network.
import { $, el } from "../ui.js";

export const S = {
  boot: null,
  view: localStorage.getItem("tidings.view") || "all",
  convs: new Map(), // id -> enriched conversation
  order: [], // ids in list order
  cursor: null,
  selected: null, // id highlighted in the list (j/k)
  current: null, // id open in the thread
  messages: new Map(), // id -> message of the open thread
  context: null,
  mode: "reply",
  presence: new Map(), // conversation id -> Map(agent id -> {name, state, until})
  typingSince: null, // when this agent started the current draft
  othersRepliedSince: null,
  unread: 0,
  picked: new Set(), // bulk selection (ids), or...
  pickAll: false, // ...every conversation matching the filters
};

export const agentName = (id) => {
  const a = S.boot?.agents.find((x) => x.id === id);
  return a ? a.name : `agent ${id}`;
};
// Customers are named by the server (`serialize.display_name`: name, phone, handle,
// "Customer #id"); a bare live event without the field keeps the placeholder meanwhile.
export const shownName = (c) => c.contact_display_name || `Customer #${c.contact_id}`;
export const channelOf = (id) => S.boot?.channels.find((c) => c.id === id);
export const teamName = (id) => {
  const t = S.boot?.teams.find((x) => x.id === id);
  return t ? t.name : `team ${id}`;
};
// Each list filter and the <select> that holds it (also what a saved view restores).
export const FILTER_IDS = {
  status: "f-status",
  inbox_id: "f-inbox",
  channel_id: "f-channel",
  label: "f-label",
  assignee_id: "f-assignee",
  sort: "f-sort",
  sla: "f-sla",
  team_id: "f-team",
};
export const filters = () => {
  const f = { view: S.view };
  for (const [k, id] of Object.entries(FILTER_IDS)) f[k] = $(id) ? $(id).value : "";
  return f;
};

// An API timestamp as microseconds since the epoch, for ordering by instant. Comparing the
// ISO strings as text put "12:00:00.5+00:00" before "12:00:00+00:00" (collation ranks "."
// before "+"), so a same-second auto-reply showed above the customer's message.
export function instant(iso) {
  if (!iso) return 0;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return 0;
  const frac = /\.(\d+)/.exec(iso);
  return ms * 1000 + (frac ? Number(`${frac[1]}000000`.slice(3, 6)) : 0);
}
export const byInstant = (a, b, field) => instant(a[field]) - instant(b[field]) || a.id - b.id;

// Agents can be assigned conversations of their inboxes; owners and admins any.
export const canTake = (a, c) => a.active && (a.role !== "agent" || a.inbox_ids.includes(c.inbox_id));

// A filter <select>: `first` (value "") over one option per item (value item[key], text item.name).
export function fillSelect(id, first, items, key = "id") {
  const sel = $(id);
  const keep = sel.value;
  sel.replaceChildren(
    el("option", { value: "" }, first),
    ...items.map((x) => el("option", { value: String(x[key]) }, x.name)),
  );
  sel.value = keep;
}
