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

// One palette action of a group: its icon, label, what it runs, its shortcut key and detail if any.
const action = (group) => (icon, label, run, hint, detail) => ({ group, icon, label, run, hint, detail });
const onConversation = action("Conversation");
const goTo = action("Go to");

function actions() {
  const open = Boolean(S.current);
  const conv = S.conv || {};
  const list = [];
  if (open) {
    list.push(
      onConversation("send", "Reply", () => ctx.reply(), "r"),
      onConversation("lock", "Add a private note", () => ctx.note(), "n"),
      onConversation("circle-check", conv.status === "resolved" ? "Reopen" : "Resolve", () => ctx.resolve(), "e"),
      onConversation("user", "Assign to me", () => ctx.patch({ assignee_id: S.boot.me.id })),
      onConversation("users", "Assign to…", () => ctx.assign(), "a"),
      onConversation("bookmark", "Label…", () => ctx.label(), "l"),
      onConversation("clock", "Snooze…", () => ctx.snooze()),
      onConversation("x", "Unassign", () => ctx.patch({ assignee_id: null })),
    );
    for (const m of macros)
      list.push(action("Macros")("zap", `Run macro: ${m.name}`, () => runMacro(m), undefined, m.steps.join(", ")));
    for (const p of ["urgent", "high", "medium", "low", "none"])
      list.push(
        onConversation("alert-triangle", p === "none" ? "Clear priority" : `Set priority ${p}`, () =>
          ctx.patch({ priority: p }),
        ),
      );
  }
  const views = {
    mine: "Mine",
    unassigned: "Unassigned",
    all: "All",
    mentions: "Mentions",
    participating: "Participating",
  };
  for (const [v, name] of Object.entries(views))
    list.push(action("Views")("list-filter", `Show ${name}`, () => ctx.view(v)));
  list.push(
    goTo("bell", "Notifications", () => ctx.notifications()),
    goTo("user-round", "My profile", () => location.assign("/profile")),
    goTo("keyboard", "Keyboard shortcuts", () => $("help").showModal(), "?"),
  );
  if (S.boot.me.is_admin)
    list.push(
      goTo("settings", "Settings", () => location.assign("/settings")),
      goTo("megaphone", "Campaigns", () => location.assign("/campaigns")),
      goTo("chart-column", "Reports", () => location.assign("/reports")),
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
