// @-autocomplete in notes: typing "@" and a few letters offers colleagues who can see this
// conversation; arrows move, Enter or Tab inserts "@handle " (a handle the server resolves:
// the name without spaces, see actions/notes.py). Shares the #canned popup with canned replies.
import { $, avatar, el } from "../ui.js";
import { canTake, S } from "./state.js";

let hits = [];
let active = 0;
let range = null;

const handle = (a) => a.name.replace(/\s+/g, "").toLowerCase();

export function showMentions() {
  const box = $("canned");
  const ta = $("c-text");
  if (S.mode !== "note") return false;
  const upto = ta.value.slice(0, ta.selectionStart);
  const m = /(^|[^\w@])@([\w.-]*)$/.exec(upto);
  if (!m) {
    if (box.dataset.mode === "mention") box.hidden = true;
    return false;
  }
  const q = m[2].toLowerCase();
  const conv = S.conv || {};
  hits = S.boot.agents
    .filter((a) => a.active && a.id !== S.boot.me.id && canTake(a, conv))
    .filter(
      (a) =>
        handle(a).startsWith(q) ||
        a.name
          .toLowerCase()
          .split(/\s+/)
          .some((w) => w.startsWith(q)),
    )
    .slice(0, 8);
  range = [upto.length - m[2].length - 1, ta.selectionStart];
  active = Math.min(active, Math.max(0, hits.length - 1));
  fillPopup("mention", hits, active, insert, (a) => [
    avatar(a.name, null, "sm"),
    " ",
    el("strong", null, a.name),
    " ",
    el("span", { class: "muted" }, `@${handle(a)}`),
  ]);
  return !box.hidden;
}

// The #canned popup, shared by canned replies and mentions: one <li> per hit (`draw(hit)` its
// content), `active` highlighted; pressing on one picks it (mousedown: the textarea keeps focus).
export function fillPopup(mode, hits, active, pick, draw) {
  const box = $("canned");
  box.dataset.mode = mode;
  box.replaceChildren(
    ...hits.map((h, i) =>
      el(
        "li",
        {
          class: i === active ? "active" : "",
          role: "option",
          "aria-selected": String(i === active),
          dataset: { id: h.id },
          onmousedown: (ev) => {
            ev.preventDefault();
            pick(h);
          },
        },
        ...draw(h),
      ),
    ),
  );
  box.hidden = !hits.length;
}

function insert(a) {
  const ta = $("c-text");
  const [from, to] = range;
  const text = `@${handle(a)} `;
  ta.value = ta.value.slice(0, from) + text + ta.value.slice(to);
  ta.selectionStart = ta.selectionEnd = from + text.length;
  $("canned").hidden = true;
  active = 0;
  ta.focus();
}

// Keys while the mention list is open; true when the key was used.
export function mentionKey(ev) {
  const box = $("canned");
  if (box.hidden || box.dataset.mode !== "mention" || !hits.length) return false;
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    active = ev.key === "ArrowDown" ? (active + 1) % hits.length : (active - 1 + hits.length) % hits.length;
    showMentions();
    return true;
  }
  if (ev.key === "Enter" || ev.key === "Tab") {
    insert(hits[active]);
    return true;
  }
  if (ev.key === "Escape") {
    box.hidden = true;
    return true;
  }
  return false;
}
