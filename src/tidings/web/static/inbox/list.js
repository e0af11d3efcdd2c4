// The conversation list pane: filters, rows, bulk actions over picked (or all matching)
// conversations, j/k selection, and the search results that stand in for the list.
import { reported } from "../forms.js";
import { $, ago, api, askText, avatar, channelIcon, confirmAction, debounce, el, listOr, windowText } from "../ui.js";
import { picker } from "./picker.js";
import { slaChip } from "./service.js";
import { agentName, byInstant, FILTER_IDS, fillSelect, filters, S, shownName, teamName } from "./state.js";
import { fillAssignees, openConversation, renderHead } from "./thread.js";

// ---- title and live indicator ---------------------------------------------------------
export function setTitle() {
  document.title = `${S.unread ? `(${S.unread}) ` : ""}Inbox — Tidings`;
}
export const refreshUnread = debounce(async () => {
  try {
    S.unread = (await api("/ui/conversations?limit=1&status=any")).unread_conversations;
    setTitle();
  } catch (_e) {
    /* offline */
  }
}, 300);

// ---- list --------------------------------------------------------------------------------
// What to do next when the list is empty: a new workspace learns where conversations come from.
function emptyHelp() {
  const f = filters();
  const phone = document.getElementById("phone-link");
  const help = el("li", { class: "empty-help" });
  if (!S.boot.channels.length) {
    help.append(
      "Conversations arrive from your channels. ",
      S.boot.me.is_admin
        ? el("a", { href: "/settings" }, "Connect a channel in Settings")
        : "Ask an admin to connect a channel.",
    );
  } else if (phone) {
    help.append(
      "Try it: ",
      el("a", { href: "/sandbox/phone", target: "_blank", rel: "noopener" }, "open the customer phone"),
      " and write as a customer — the conversation appears here live.",
    );
  }
  if (f.view !== "all" || f.status !== "open" || f.inbox_id || f.channel_id || f.label || f.assignee_id || f.team_id) {
    help.append(
      help.childNodes.length ? el("br") : null,
      "Filters are on: ",
      el(
        "button",
        { type: "button", class: "link", id: "clear-filters", onclick: clearFilters },
        "show all open conversations",
      ),
      ".",
    );
  }
  return help;
}

function clearFilters() {
  S.view = "all";
  localStorage.setItem("tidings.view", S.view);
  for (const id of ["f-inbox", "f-channel", "f-label", "f-assignee", "f-team", "f-sla", "f-saved"])
    if ($(id)) $(id).value = "";
  $("f-status").value = "open";
  loadList();
}

// ---- saved views ----------------------------------------------------------------------------
let savedViews = [];
async function loadSavedViews(selectId) {
  try {
    savedViews = await api("/views");
  } catch (_e) {
    return;
  }
  const sel = $("f-saved");
  sel.replaceChildren(
    el("option", { value: "" }, savedViews.length ? "Saved views…" : "No saved views yet"),
    ...savedViews.map((v) => el("option", { value: String(v.id) }, v.name)),
  );
  sel.value = selectId ? String(selectId) : "";
  $("view-delete").hidden = !sel.value;
}
function applyView(v) {
  const f = v.filters || {};
  S.view = f.view || "all";
  for (const [k, id] of Object.entries(FILTER_IDS)) {
    const node = $(id);
    if (node)
      node.value =
        f[k] === undefined || f[k] === null ? (k === "status" ? "open" : k === "sort" ? "activity" : "") : String(f[k]);
  }
  loadList();
}
async function saveView() {
  const name = await askText({
    title: "Save these filters as a view",
    label: "Name (the tab and filters you see now are saved, for you only)",
    placeholder: "e.g. Urgent WhatsApp",
  });
  if (!name) return;
  const f = filters();
  const body = { view: f.view, status: f.status || null, sort: f.sort || null };
  for (const k of ["inbox_id", "channel_id", "assignee_id", "team_id"]) if (f[k]) body[k] = Number(f[k]);
  for (const k of ["label", "sla"]) if (f[k]) body[k] = f[k];
  await reported($("view-error"), async () => {
    const v = await api("/views", { method: "POST", json: { name: name.trim(), filters: body } });
    await loadSavedViews(v.id);
  });
}
async function deleteView() {
  const v = savedViews.find((x) => String(x.id) === $("f-saved").value);
  if (!v) return;
  const ok = await confirmAction({
    title: `Delete the view “${v.name}”?`,
    consequences: [
      "Only the saved filter goes; no conversation changes.",
      "Colleagues are not affected: views are yours.",
    ],
    confirm: "Delete view",
  });
  if (!ok) return;
  await api(`/views/${v.id}`, { method: "DELETE" }).catch(() => null);
  await loadSavedViews();
}
export function matches(c) {
  const f = filters();
  if (f.view === "mine" && c.assignee_id !== S.boot.me.id) return false;
  if (f.view === "unassigned" && c.assignee_id !== null) return false;
  // Mentions and Participating depend on notes and replies the row does not carry: the server
  // decides (the list reloads on my notifications); a row already listed stays.
  if ((f.view === "mentions" || f.view === "participating") && !S.convs.has(c.id) && c.assignee_id !== S.boot.me.id)
    return false;
  if (f.status !== "any" && c.status !== f.status) return false;
  if (f.inbox_id && String(c.inbox_id) !== f.inbox_id) return false;
  if (f.channel_id && String(c.last_channel_id) !== f.channel_id) return false;
  if (f.label && !(c.labels || []).includes(f.label)) return false;
  if (f.assignee_id && String(c.assignee_id) !== f.assignee_id) return false;
  if (f.team_id && String(c.team_id) !== f.team_id) return false;
  if (f.sla && c.sla_state !== f.sla) return false;
  return true;
}

function sortOrder() {
  const desc = $("f-sort").value === "activity";
  S.order = [...S.convs.values()]
    .sort((a, b) => {
      const x = byInstant(a, b, "last_activity_at");
      return desc ? -x : x;
    })
    .map((c) => c.id);
}

function row(c) {
  const w = windowText(c.window);
  const li = el(
    "li",
    {
      class: `conv${c.unread_count ? " unread" : ""}${c.id === S.current ? " open" : ""}${c.id === S.selected ? " selected" : ""}`,
      dataset: { id: c.id },
      tabindex: "-1",
      onclick: () => {
        select(c.id);
        openConversation(c.id);
      },
    },
    el("input", {
      type: "checkbox",
      class: "pick",
      "aria-label": "Select",
      checked: S.pickAll || S.picked.has(c.id),
      onclick: (ev) => {
        ev.stopPropagation();
        togglePick(c.id);
      },
    }),
    el(
      "span",
      { class: "conv-avatar" },
      avatar(shownName(c), c.contact_picture_url),
      channelIcon(c.channel_kind, c.channel_name),
    ),
    el(
      "div",
      { class: "conv-main" },
      el(
        "div",
        { class: "conv-top" },
        el("span", { class: "name" }, shownName(c)),
        c.priority && c.priority !== "none"
          ? el("span", { class: `prio prio-${c.priority}`, title: `priority ${c.priority}` }, c.priority)
          : null,
        el("span", { class: "when", title: c.last_activity_at }, ago(c.last_activity_at)),
      ),
      el(
        "div",
        { class: "conv-bottom" },
        el("span", { class: "preview" }, c.last_message_preview || ""),
        c.unread_count
          ? el("span", { class: "badge", title: `${c.unread_count} unread` }, String(c.unread_count))
          : null,
      ),
      el(
        "div",
        { class: "conv-tags" },
        w ? el("span", { class: `window ${w.cls}` }, w.text) : null,
        slaChip(c),
        c.assignee_id
          ? el(
              "span",
              { class: "assignee", title: `assigned to ${agentName(c.assignee_id)}` },
              `@${agentName(c.assignee_id)}`,
            )
          : null,
        c.team_id ? el("span", { class: "team", title: "team" }, `⚑ ${teamName(c.team_id)}`) : null,
        ...(c.labels || []).map((name) => el("span", { class: "label" }, name)),
        c.status !== "open" ? el("span", { class: `status status-${c.status}` }, c.status) : null,
      ),
    ),
  );
  return li;
}

export function renderList() {
  sortOrder();
  const list = $("list");
  list.replaceChildren(...S.order.map((id) => row(S.convs.get(id))));
  if (!S.order.length) list.append(el("li", { class: "empty" }, "No conversations here."), emptyHelp());
  $("more").hidden = !S.cursor;
  for (const b of document.querySelectorAll(".views button"))
    b.setAttribute("aria-selected", String(b.dataset.view === S.view));
}

// ---- bulk actions -----------------------------------------------------------------------
export function togglePick(id) {
  if (S.pickAll) {
    S.pickAll = false;
    S.picked = new Set(S.order);
  }
  if (S.picked.has(id)) S.picked.delete(id);
  else S.picked.add(id);
  renderBulk();
  renderList();
}

function clearPicks() {
  S.picked.clear();
  S.pickAll = false;
  renderBulk();
  renderList();
}

function renderBulk() {
  const bar = $("bulk");
  const n = S.pickAll ? null : S.picked.size;
  if (!S.pickAll && !n) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  bar.replaceChildren(
    el("span", { class: "count" }, S.pickAll ? "All matching" : `${n} selected`),
    S.pickAll || (!S.cursor && n === S.order.length)
      ? null
      : el(
          "button",
          {
            type: "button",
            class: "link",
            id: "pick-all",
            onclick: () => {
              S.pickAll = true;
              renderBulk();
              renderList();
            },
          },
          "Select all matching",
        ),
    el("button", { type: "button", id: "bulk-resolve", onclick: () => bulk({ status: "resolved" }) }, "Resolve"),
    bulkPicker("bulk-assign", "Assign…", "Assign selected to", "assignee_id", () => [
      { label: "Unassigned", value: null },
      ...S.boot.agents.filter((a) => a.active).map((a) => ({ label: a.name, value: a.id })),
    ]),
    bulkPicker("bulk-team", "Team…", "Team for selected", "team_id", () => [
      { label: "No team", value: null },
      ...S.boot.teams.map((t) => ({ label: t.name, value: t.id })),
    ]),
    bulkPicker(
      "bulk-label",
      "Label…",
      "Add label to selected",
      "add_label",
      () => S.boot.labels.map((l) => ({ label: l.name, value: l.name })),
      true,
    ),
    el("button", { type: "button", class: "link", onclick: clearPicks }, "Clear"),
  );
}

// A bulk-bar button: the picker (`items()` when pressed) sets `key` on the selected conversations.
const bulkPicker = (id, text, title, key, items, allowNew) =>
  el(
    "button",
    { type: "button", id, onclick: () => picker(title, items(), (it) => bulk({ [key]: it.value }), allowNew) },
    text,
  );

async function bulk(change) {
  const f = filters();
  const target = S.pickAll
    ? {
        matching: {
          view: f.view,
          status: f.status,
          inbox_id: f.inbox_id ? Number(f.inbox_id) : null,
          channel_id: f.channel_id ? Number(f.channel_id) : null,
          assignee_id: f.assignee_id ? Number(f.assignee_id) : null,
          label: f.label || null,
          team_id: f.team_id ? Number(f.team_id) : null,
        },
      }
    : { ids: [...S.picked] };
  try {
    const res = await api("/ui/conversations/bulk", { method: "POST", json: { ...target, ...change } });
    S.picked.clear();
    S.pickAll = false;
    $("bulk").hidden = false;
    $("bulk").replaceChildren(
      el(
        "span",
        { class: "count", id: "bulk-done" },
        `Updated ${res.count} conversation${res.count === 1 ? "" : "s"}.`,
      ),
    );
    setTimeout(renderBulk, 3000);
    await loadList();
  } catch (e) {
    $("bulk").append(el("span", { class: "error" }, ` ${e.message}`));
  }
}

export async function loadList(more = false) {
  const f = filters();
  const q = new URLSearchParams({ limit: "30" });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (more && S.cursor) q.set("cursor", S.cursor);
  const page = await api(`/ui/conversations?${q}`);
  if (!more) S.convs.clear();
  for (const c of page.data) S.convs.set(c.id, c);
  S.cursor = page.next_cursor;
  S.unread = page.unread_conversations;
  setTitle();
  renderList();
}

// Live events may ask for the same row twice in quick succession (created, then renamed): only
// the answer to the latest request is shown, so an older answer cannot overwrite a newer one.
const upserts = new Map();
export async function upsertConversation(id) {
  const seq = (upserts.get(id) || 0) + 1;
  upserts.set(id, seq);
  let c;
  try {
    c = await api(`/ui/conversations/${id}`);
  } catch (_e) {
    return;
  }
  if (upserts.get(id) !== seq) return;
  if (matches(c)) S.convs.set(id, c);
  else S.convs.delete(id);
  renderList();
  if (id === S.current) renderHead(c);
}

export function select(id) {
  S.selected = id;
  for (const li of document.querySelectorAll("#list .conv"))
    li.classList.toggle("selected", Number(li.dataset.id) === id);
  const node = document.querySelector(`#list .conv[data-id="${id}"]`);
  if (node) node.scrollIntoView({ block: "nearest" });
}

export function move(delta) {
  if (!S.order.length) return;
  const i = S.order.indexOf(S.selected ?? S.current);
  const next = i < 0 ? 0 : Math.min(S.order.length - 1, Math.max(0, i + delta));
  select(S.order[next]);
}

// ---- search ------------------------------------------------------------------------------
export const runSearch = debounce(async () => {
  const q = $("search").value.trim();
  const box = $("search-results");
  if (!q) {
    box.hidden = true;
    $("list").hidden = false;
    return;
  }
  const res = await api(`/ui/search?${new URLSearchParams({ q })}`);
  box.replaceChildren(
    el("h3", null, "Contacts"),
    listOr(
      null,
      res.contacts.map((c) =>
        el(
          "li",
          {
            class: `hit${c.conversation_id ? "" : " dim"}`,
            onclick: () => c.conversation_id && openConversation(c.conversation_id),
          },
          el("strong", null, c.display_name),
          " ",
          el(
            "span",
            { class: "muted" },
            [c.phone, c.email, ...c.identities.map((i) => i.address)].filter(Boolean).join(" · "),
          ),
        ),
      ),
      "No contacts.",
    ),
    el("h3", null, "Messages"),
    listOr(
      null,
      res.messages.map((m) =>
        el(
          "li",
          { class: "hit", onclick: () => openConversation(m.conversation_id) },
          el("strong", null, m.contact_display_name),
          " ",
          el("span", { class: "snippet" }, (m.body || "").slice(0, 120)),
        ),
      ),
      "No messages.",
    ),
  );
  box.hidden = false;
  $("list").hidden = true;
}, 200);

export function fillFilters() {
  const b = S.boot;
  // [select, first option, items, the field that is each option's value]
  for (const [id, first, items, key] of [
    ["f-inbox", "All inboxes", b.inboxes, "id"],
    ["f-channel", "All channels", b.channels, "id"],
    ["f-label", "Any label", b.labels, "name"],
    ["f-assignee", "Anyone", b.agents, "id"],
    ["f-team", "Any team", b.teams, "id"],
    ["t-team", "No team", b.teams, "id"],
  ])
    fillSelect(id, first, items, key);
  fillAssignees();
}

// The Mine / Unassigned / All / ... tab (remembered in this browser).
export function setView(v) {
  S.view = v;
  localStorage.setItem("tidings.view", v);
  loadList();
}

export function wireList() {
  for (const b of document.querySelectorAll(".views button"))
    b.addEventListener("click", () => setView(b.dataset.view));
  for (const id of Object.values(FILTER_IDS)) $(id).addEventListener("change", () => loadList());
  $("more").addEventListener("click", () => loadList(true));
  $("f-saved").addEventListener("change", () => {
    const v = savedViews.find((x) => String(x.id) === $("f-saved").value);
    $("view-delete").hidden = !v;
    if (v) applyView(v);
  });
  $("view-save").addEventListener("click", saveView);
  $("view-delete").addEventListener("click", deleteView);
  loadSavedViews();
  $("search").addEventListener("input", runSearch);
  $("search").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      $("search").value = "";
      runSearch();
    }
  });
}
