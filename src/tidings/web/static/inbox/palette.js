// The command palette (Ctrl/⌘+K): one box over actions (on the open conversation, views, pages),
// the conversations in the list, and contacts and messages found by the server's search.
// Arrow keys move, Enter runs, Esc closes. Everything shown is text (el()).
import { reported } from "../forms.js";
import { $, api, channelIcon, debounce, el, icon } from "../ui.js";
import { S, shownName } from "./state.js";

let items = [];
let active = 0;
let found = [];
let ctx = null;
let macros = [];

function actions() {
  const open = Boolean(S.current);
  const conv = S.conv || {};
  const list = [];
  if (open) {
    list.push(
      { group: "Conversation", icon: "send", label: "Reply", hint: "r", run: () => ctx.reply() },
      { group: "Conversation", icon: "lock", label: "Add a private note", hint: "n", run: () => ctx.note() },
      {
        group: "Conversation",
        icon: "circle-check",
        label: conv.status === "resolved" ? "Reopen" : "Resolve",
        hint: "e",
        run: () => ctx.resolve(),
      },
      {
        group: "Conversation",
        icon: "user",
        label: "Assign to me",
        run: () => ctx.patch({ assignee_id: S.boot.me.id }),
      },
      { group: "Conversation", icon: "users", label: "Assign to…", hint: "a", run: () => ctx.assign() },
      { group: "Conversation", icon: "bookmark", label: "Label…", hint: "l", run: () => ctx.label() },
      { group: "Conversation", icon: "clock", label: "Snooze…", run: () => ctx.snooze() },
      { group: "Conversation", icon: "x", label: "Unassign", run: () => ctx.patch({ assignee_id: null }) },
    );
    for (const m of macros)
      list.push({
        group: "Macros",
        icon: "zap",
        label: `Run macro: ${m.name}`,
        detail: m.steps.join(", "),
        run: () => runMacro(m),
      });
    for (const p of ["urgent", "high", "medium", "low", "none"])
      list.push({
        group: "Conversation",
        icon: "alert-triangle",
        label: p === "none" ? "Clear priority" : `Set priority ${p}`,
        run: () => ctx.patch({ priority: p }),
      });
  }
  const views = {
    mine: "Mine",
    unassigned: "Unassigned",
    all: "All",
    mentions: "Mentions",
    participating: "Participating",
  };
  for (const [v, name] of Object.entries(views))
    list.push({ group: "Views", icon: "list-filter", label: `Show ${name}`, run: () => ctx.view(v) });
  list.push(
    { group: "Go to", icon: "bell", label: "Notifications", run: () => ctx.notifications() },
    { group: "Go to", icon: "user-round", label: "My profile", run: () => location.assign("/profile") },
    { group: "Go to", icon: "keyboard", label: "Keyboard shortcuts", hint: "?", run: () => $("help").showModal() },
  );
  if (S.boot.me.is_admin)
    list.push(
      { group: "Go to", icon: "settings", label: "Settings", run: () => location.assign("/settings") },
      { group: "Go to", icon: "megaphone", label: "Campaigns", run: () => location.assign("/campaigns") },
      { group: "Go to", icon: "chart-column", label: "Reports", run: () => location.assign("/reports") },
    );
  return list;
}

function conversations() {
  return S.order
    .map((id) => S.convs.get(id))
    .filter(Boolean)
    .map((c) => ({
      group: "Conversations",
      kind: c.channel_kind,
      label: shownName(c),
      detail: `#${c.id} · ${c.last_message_preview || ""}`,
      run: () => ctx.open(c.id),
    }));
}

function draw() {
  const q = $("palette-input").value.trim().toLowerCase();
  const words = q.split(/\s+/).filter(Boolean);
  const hit = (it) => words.every((w) => `${it.label} ${it.detail || ""} ${it.group}`.toLowerCase().includes(w));
  items = [...actions(), ...conversations()].filter(hit).slice(0, 40);
  items.push(...found);
  active = Math.min(active, Math.max(0, items.length - 1));
  let group = null;
  const rows = [];
  items.forEach((it, i) => {
    if (it.group !== group) {
      group = it.group;
      rows.push(el("li", { class: "palette-group", role: "presentation" }, group));
    }
    rows.push(
      el(
        "li",
        {
          role: "option",
          id: `pal-${i}`,
          class: i === active ? "active" : "",
          "aria-selected": String(i === active),
          onmousedown: (ev) => {
            ev.preventDefault();
            run(i);
          },
        },
        it.kind ? channelIcon(it.kind) : icon(it.icon || "search"),
        el("span", { class: "pal-label" }, it.label),
        it.detail ? el("span", { class: "pal-detail" }, it.detail) : null,
        it.hint ? el("kbd", null, it.hint) : null,
      ),
    );
  });
  if (!items.length)
    rows.push(el("li", { class: "empty" }, "Nothing matches. Try a customer's name, phone or words from a message."));
  $("palette-list").replaceChildren(...rows);
  $("palette-input").setAttribute("aria-activedescendant", items.length ? `pal-${active}` : "");
  $("palette-list").querySelector("li.active")?.scrollIntoView({ block: "nearest" });
}

const searchServer = debounce(async (q) => {
  if (q.length < 2) {
    found = [];
    draw();
    return;
  }
  try {
    const res = await api(`/ui/search?${new URLSearchParams({ q, limit: "8" })}`);
    if ($("palette-input").value.trim() !== q) return;
    found = [
      ...res.contacts.map((c) => ({
        group: "Contacts",
        icon: "user",
        label: c.display_name || c.name || `Customer #${c.id}`,
        detail: [c.phone, c.email].filter(Boolean).join(" · "),
        run: () => (c.conversation_id ? ctx.open(c.conversation_id) : null),
      })),
      ...res.messages.map((m) => ({
        group: "Messages",
        icon: "message-circle",
        label: m.contact_display_name || m.contact_name || "Customer",
        detail: (m.body || "").slice(0, 90),
        run: () => ctx.open(m.conversation_id),
      })),
    ];
  } catch (_e) {
    found = [];
  }
  draw();
}, 200);

function run(i) {
  const it = items[i];
  if (!it) return;
  $("palette").close();
  it.run();
}

// A macro runs its steps on the open conversation; refused or failed steps are said, the rest
// still ran (the thread narrates each change).
async function runMacro(m) {
  const id = S.current;
  await reported($("c-error"), async () => {
    const res = await api(`/conversations/${id}/macros/${m.id}/run`, { method: "POST" });
    const bad = res.steps.filter((x) => x.outcome !== "ok");
    $("c-error").textContent = bad.length
      ? `Macro ${m.name}: ${bad.map((x) => `${x.action} ${x.outcome} — ${x.detail}`).join("; ")}`
      : "";
    ctx.refresh(id);
  });
}

async function loadMacros() {
  try {
    macros = await api("/macros");
  } catch (_e) {
    macros = [];
  }
}

export function openPalette(query = "") {
  const dlg = $("palette");
  if (dlg.open) return;
  if (S.current) loadMacros().then(() => dlg.open && draw());
  $("palette-input").value = query;
  active = 0;
  found = [];
  draw();
  dlg.showModal();
  $("palette-input").focus();
}

export function wirePalette(handlers) {
  ctx = handlers;
  const input = $("palette-input");
  input.addEventListener("input", () => {
    active = 0;
    draw();
    searchServer(input.value.trim());
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      active = ev.key === "ArrowDown" ? Math.min(items.length - 1, active + 1) : Math.max(0, active - 1);
      draw();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      run(active);
    }
  });
  document.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === "k") {
      ev.preventDefault();
      if ($("palette").open) $("palette").close();
      else openPalette();
    }
  });
  $("palette-open")?.addEventListener("click", () => openPalette());
  $("t-macro")?.addEventListener("click", () => openPalette());
}
