// What arrives without a click: the SSE stream (conversations, messages, contacts, presence,
// settings, my notifications), colleagues' presence and our own heartbeat, the offline
// banner, and the inbound-lag banner.
import { $, api, el, setOnline } from "../ui.js";
import { loadContext } from "./contact.js";
import { fillFilters, loadList, refreshUnread, upsertConversation } from "./list.js";
import { onNotification } from "./notify.js";
import { refreshQueue } from "./service.js";
import { agentName, S } from "./state.js";
import { putMessage, renderMessages } from "./thread.js";

// ---- presence ----------------------------------------------------------------------------
// `typing`: the agent is typing now (keystrokes in the composer), so the server shows the
// customer a typing indicator where the channel has one. Said at most every 5 s while typing
// (Telegram's lasts about that long; the server throttles per conversation too); the
// heartbeat over an idle draft keeps "replying" for colleagues without it.
const TYPING_EVERY_MS = 5000;
let lastAnnounce = { id: null, state: null, at: 0, typedAt: 0 };
export function announce(id, state, typing = false) {
  const now = Date.now();
  const same = lastAnnounce.id === id && lastAnnounce.state === state;
  if (same && (typing ? now - lastAnnounce.typedAt < TYPING_EVERY_MS : now - lastAnnounce.at < 10000)) return;
  lastAnnounce = { id, state, at: now, typedAt: typing ? now : same ? lastAnnounce.typedAt : 0 };
  const json = state === "replying" ? { state, typing } : { state };
  // keepalive: "left" is often said while the page unloads.
  api(`/ui/conversations/${id}/presence`, { method: "POST", json, keepalive: state === "left" }).catch(() => {});
}
setInterval(() => {
  if (S.current && !document.hidden) {
    lastAnnounce.at = 0;
    announce(S.current, S.typingSince ? "replying" : "viewing");
  }
}, 15000);

function onPresence(p) {
  if (p.agent_id === S.boot.me.id) return;
  const per = S.presence.get(p.conversation_id) || new Map();
  const known = per.has(p.agent_id);
  // Expiry counts from when it was said (a replayed old event is already stale).
  const until = (Date.parse(p.at) || Date.now()) + (p.ttl || 30) * 1000;
  if (p.state === "left") per.delete(p.agent_id);
  else per.set(p.agent_id, { name: p.agent_name, state: p.state, until });
  S.presence.set(p.conversation_id, per);
  renderPresence();
  // Someone new arrived where I am: say I am here too, so they need not wait for my next beat.
  if (!known && p.state !== "left" && p.conversation_id === S.current && until > Date.now()) {
    lastAnnounce.at = 0;
    announce(S.current, S.typingSince ? "replying" : "viewing");
  }
}

export function renderPresence() {
  const box = $("presence");
  const per = S.presence.get(S.current);
  const now = Date.now();
  const live = per ? [...per.values()].filter((x) => x.until > now) : [];
  box.replaceChildren(...live.map((x) => el("span", { class: `who-${x.state}` }, `${x.name} is ${x.state}`)));
  box.hidden = !live.length;
}
setInterval(renderPresence, 5000);

// ---- live --------------------------------------------------------------------------------
// The stream dropped (server restarting, network gone): the banner says so until it is back;
// then the list and the bell catch up on what was missed.
let offlineSince = null;
let reloadAfterReconnect = () => {};
export function connect(onReconnect) {
  if (onReconnect) reloadAfterReconnect = onReconnect;
  const live = $("live");
  const es = new EventSource("/api/v1/events");
  es.onopen = () => {
    live.classList.add("on");
    live.title = "Live";
    if (offlineSince) {
      offlineSince = null;
      setOnline(true);
      reloadAfterReconnect();
    }
  };
  es.onerror = () => {
    live.classList.remove("on");
    live.title = "Reconnecting…";
    offlineSince = offlineSince || Date.now();
    setOnline(false);
  };
  es.addEventListener("notification.created", (ev) => {
    onNotification(JSON.parse(ev.data));
    // These views are decided by the server (notes, replies): let it list the newcomer.
    if (S.view === "mentions" || S.view === "participating") loadList();
  });
  for (const t of ["conversation.created", "conversation.updated"]) {
    es.addEventListener(t, (ev) => {
      const c = JSON.parse(ev.data);
      upsertConversation(c.id);
      refreshUnread();
      refreshQueue();
    });
  }
  for (const t of ["message.created", "message.updated"]) {
    es.addEventListener(t, (ev) => {
      const m = JSON.parse(ev.data);
      if (m.conversation_id !== S.current) return;
      const isNew = !S.messages.has(m.id);
      putMessage(m);
      renderMessages();
      if (
        isNew &&
        m.direction === "out" &&
        m.kind !== "note" &&
        m.kind !== "system" &&
        m.sender_agent_id &&
        m.sender_agent_id !== S.boot.me.id &&
        S.typingSince
      ) {
        S.othersRepliedSince = agentName(m.sender_agent_id);
      }
      if (isNew && m.direction === "in") {
        loadContext();
        api(`/ui/conversations/${m.conversation_id}/read`, { method: "POST" }).catch(() => {});
      }
    });
  }
  // Receipts are applied in batches: several messages of one conversation in one event.
  es.addEventListener("messages.updated", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.conversation_id !== S.current) return;
    for (const m of d.messages || []) putMessage(m);
    renderMessages();
  });
  // A customer's name arrived from the provider's profile API: show it where they are listed.
  es.addEventListener("contact.updated", (ev) => {
    const d = JSON.parse(ev.data);
    // Every conversation of the contact: one still being added to the list (its first fetch
    // may predate the name) gets the name too; the list's filters decide what is shown.
    for (const id of d.conversation_ids || []) upsertConversation(id);
    if (S.context?.contact && S.context.contact.id === d.id) loadContext();
  });
  es.addEventListener("presence", (ev) => onPresence(JSON.parse(ev.data)));
  es.addEventListener("settings.updated", async () => {
    S.boot = await api("/ui/bootstrap");
    fillFilters();
  });
}

// Backpressure is visible: the customer lane's lag, as the server measures it
// (cached there, about once a second per process), polled every few seconds. The status
// lane (delivery/read receipts) lags by design during a broadcast and delays nothing an
// agent acts on, so it stays out of the inbox: admins see it in /metrics and `tidings doctor`.
const LAG_POLL_MS = 3000;
const lagText = (s) => (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);
export async function pollLag() {
  if (!document.hidden) {
    try {
      const lag = await api("/inbound/lag");
      const banner = $("lag-banner");
      const late = lag.customer.seconds > lag.warn_seconds;
      if (late) {
        banner.textContent = `Incoming messages delayed by ${lagText(lag.customer.seconds)}`;
        banner.title = `${lag.customer.pending} incoming events waiting to be processed`;
      }
      banner.hidden = !late;
    } catch (_e) {
      /* offline: the live dot says so */
    }
  }
  setTimeout(pollLag, LAG_POLL_MS);
}

// The page is going away: tell colleagues now rather than when the presence expires.
export function leave() {
  if (S.current) {
    lastAnnounce.id = null;
    announce(S.current, "left");
  }
}
