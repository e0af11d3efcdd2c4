// The bell: my notifications (mentions, assignments, replies in my conversations) from
// GET /api/v1/notifications, live over `notification.created` (only mine reach me), read marks,
// and optional desktop alerts while the tab is hidden. Text only, through el().
import { $, ago, api, el, icon } from "../ui.js";
import { S } from "./state.js";

const KIND = {
  mention: { icon: "at-sign", verb: (n) => `${n.actor_name || "Someone"} mentioned you` },
  assigned: {
    icon: "user",
    verb: (n) => (n.actor_name ? `${n.actor_name} assigned you` : "Assigned to you"),
  },
  reply: { icon: "message-circle", verb: () => "New reply" },
};
const state = { items: [], unread: 0, open: false, openConversation: null };

function drawCount() {
  const count = $("bell-count");
  count.textContent = state.unread > 99 ? "99+" : String(state.unread);
  count.hidden = state.unread === 0;
  $("bell").setAttribute(
    "aria-label",
    state.unread ? `Notifications: ${state.unread} unread` : "Notifications: none unread",
  );
}

function row(n) {
  const k = KIND[n.kind] || KIND.reply;
  return el(
    "li",
    {
      class: `notif${n.read_at ? "" : " unread"}`,
      dataset: { id: n.id, conversation: n.conversation_id },
      tabindex: "-1",
      onclick: () => choose(n),
    },
    el("span", { class: `notif-icon notif-${n.kind}` }, icon(k.icon)),
    el(
      "span",
      { class: "notif-main" },
      el("span", { class: "notif-title" }, `${k.verb(n)} · ${n.contact_name}`),
      n.body ? el("span", { class: "notif-body" }, n.body) : null,
    ),
    el("span", { class: "notif-when" }, ago(n.created_at)),
  );
}

function drawPanel() {
  const list = $("notif-list");
  // A redraw (live or refreshed) keeps the keyboard where it was.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  list.replaceChildren(
    ...(state.items.length
      ? state.items.map(row)
      : [
          el(
            "li",
            { class: "empty" },
            "Nothing yet. You will see here when a colleague @mentions you, assigns you a conversation, or a customer replies in yours.",
          ),
        ]),
  );
  if (focused) list.querySelector(`li[data-id="${CSS.escape(focused)}"]`)?.focus();
  else if (state.open && !$("notif-panel").contains(document.activeElement))
    (list.querySelector("li.notif") || $("notif-all")).focus();
  const alerts = $("notif-alerts");
  if (!("Notification" in window)) alerts.hidden = true;
  else alerts.textContent = Notification.permission === "granted" ? "Desktop alerts on" : "Turn on desktop alerts";
}

export async function loadNotifications() {
  try {
    const got = await api("/notifications?limit=30");
    state.items = got.items;
    state.unread = got.unread;
    drawCount();
    if (state.open) drawPanel();
  } catch (_e) {
    /* the offline banner says so */
  }
}

async function choose(n) {
  togglePanel(false);
  if (!n.read_at) {
    const r = await api("/notifications/read", { method: "POST", json: { ids: [n.id] } }).catch(() => null);
    if (r) {
      n.read_at = new Date().toISOString();
      state.unread = r.unread;
      drawCount();
    }
  }
  state.openConversation?.(n.conversation_id);
}

export function togglePanel(open = !state.open) {
  state.open = open;
  $("notif-panel").hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
  if (open) {
    drawPanel();
    loadNotifications();
  }
}

// A live notification: count it, list it, and alert if the tab is hidden.
export function onNotification(n) {
  if (n.agent_id !== S.boot.me.id || state.items.some((x) => x.id === n.id)) return;
  state.unread += 1;
  drawCount();
  loadNotifications();
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    const k = KIND[n.kind] || KIND.reply;
    const alert = new Notification(k.verb(n), { body: (n.body || "").slice(0, 140), tag: `tidings-n${n.id}` });
    alert.onclick = () => {
      window.focus();
      choose(n);
      alert.close();
    };
  }
}

// A conversation opened: its notifications are read.
export async function readConversation(id) {
  if (!state.items.some((n) => n.conversation_id === id && !n.read_at)) return;
  const r = await api("/notifications/read", { method: "POST", json: { conversation_id: id } }).catch(() => null);
  if (!r) return;
  for (const n of state.items) if (n.conversation_id === id) n.read_at = n.read_at || new Date().toISOString();
  state.unread = r.unread;
  drawCount();
  if (state.open) drawPanel();
}

export function wireNotifications(openConversation) {
  state.openConversation = openConversation;
  $("bell").addEventListener("click", (ev) => {
    ev.stopPropagation();
    togglePanel();
  });
  $("notif-all").addEventListener("click", async () => {
    const r = await api("/notifications/read", { method: "POST", json: { all: true } }).catch(() => null);
    if (!r) return;
    for (const n of state.items) n.read_at = n.read_at || new Date().toISOString();
    state.unread = r.unread;
    drawCount();
    drawPanel();
  });
  $("notif-alerts").addEventListener("click", async () => {
    await Notification.requestPermission();
    drawPanel();
  });
  document.addEventListener("click", (ev) => {
    if (state.open && !$("notif-panel").contains(ev.target) && ev.target !== $("bell")) togglePanel(false);
  });
  $("notif-panel").addEventListener("keydown", (ev) => {
    const items = [...$("notif-list").querySelectorAll("li.notif")];
    const at = items.indexOf(document.activeElement);
    if (ev.key === "Escape") {
      ev.preventDefault();
      togglePanel(false);
      $("bell").focus();
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const next = ev.key === "ArrowDown" ? Math.min(items.length - 1, at + 1) : Math.max(0, at - 1);
      items[next]?.focus();
    } else if (ev.key === "Enter" && at >= 0) {
      ev.preventDefault();
      const n = state.items.find((x) => String(x.id) === items[at].dataset.id);
      if (n) choose(n);
    }
  });
  loadNotifications();
}
