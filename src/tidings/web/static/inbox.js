// The agent inbox (the page's entry module): list, thread, composer, contact panel and live
// updates are modules in inbox/; this file wires them, owns the keyboard and starts the page.
// Customer-supplied text is only ever inserted with textContent (see el() in ui.js).
import { setMode, wireComposer } from "./inbox/composer.js";
import { wireContact } from "./inbox/contact.js";
import { fillFilters, loadList, move, renderList, setView, togglePick, wireList } from "./inbox/list.js";
import { connect, leave, pollLag } from "./inbox/live.js";
import { loadNotifications, togglePanel, wireNotifications } from "./inbox/notify.js";
import "./inbox/new-conversation-button.js";
import { wirePalette } from "./inbox/palette.js";
import { attachService } from "./inbox/service.js";
import { S } from "./inbox/state.js";
import {
  openConversation,
  patch,
  pickAssignee,
  pickLabel,
  pickSnooze,
  toggleResolve,
  wireThread,
} from "./inbox/thread.js";
import { $, api, setKinds } from "./ui.js";

// ---- keyboard ----------------------------------------------------------------------------
function typing(target) {
  return (
    target &&
    (target.tagName === "INPUT" ||
      target.tagName === "TEXTAREA" ||
      target.tagName === "SELECT" ||
      target.isContentEditable)
  );
}

document.addEventListener("keydown", (ev) => {
  if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if ($("picker").open || $("help").open || $("palette").open) return;
  if (ev.key === "Escape" && typing(ev.target)) {
    ev.target.blur();
    $("canned").hidden = true;
    return;
  }
  if (typing(ev.target)) return;
  const keys = {
    j: () => move(1),
    k: () => move(-1),
    Enter: () => {
      if (S.selected) openConversation(S.selected);
    },
    r: () => S.current && setMode("reply"),
    n: () => S.current && setMode("note"),
    e: () => S.current && toggleResolve(),
    a: () => pickAssignee(),
    l: () => pickLabel(),
    "/": () => $("search").focus(),
    "?": () => $("help").showModal(),
  };
  keys.x = () => {
    const id = S.selected ?? S.current;
    if (id) togglePick(id);
  };
  const fn = keys[ev.key];
  if (fn) {
    ev.preventDefault();
    fn();
  }
});

function wire() {
  wireList();
  wireComposer();
  wireThread();
  wireContact();
  window.addEventListener("hashchange", () => {
    const m = /^#c\/(\d+)$/.exec(location.hash);
    if (m && Number(m[1]) !== S.current) openConversation(Number(m[1]));
  });
  window.addEventListener("pagehide", leave);
  setInterval(renderList, 60000); // refresh "x min ago" and window countdowns
  attachService({ boot: S.boot, reload: () => loadList(), open: (id) => openConversation(id) });
}

async function start() {
  S.boot = await api("/ui/bootstrap");
  setKinds(S.boot.kinds);
  fillFilters();
  wire();
  wireNotifications((id) => openConversation(id));
  wirePalette({
    open: (id) => openConversation(id),
    reply: () => setMode("reply"),
    note: () => setMode("note"),
    resolve: () => toggleResolve(),
    patch: (body) => patch(body),
    assign: () => pickAssignee(),
    label: () => pickLabel(),
    snooze: () => pickSnooze(),
    view: setView,
    notifications: () => togglePanel(true),
    refresh: (id) => {
      if (S.current === id) openConversation(id);
    },
  });
  connect(() => {
    loadList();
    loadNotifications();
  });
  pollLag();
  await loadList();
  const m = /^#c\/(\d+)$/.exec(location.hash);
  if (m) openConversation(Number(m[1]));
  document.body.dataset.ready = "1";
}
start();
