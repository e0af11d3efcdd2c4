// Snooze until a chosen time: readable dates for the snooze choices, and a date-and-time
// dialog for "Pick a date and time…".
import { el } from "../ui.js";

// "Tue 8 Dec, 09:00" in the agent's locale.
export const readable = (d) =>
  d.toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

const localValue = (d) => {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

// Opens a small dialog; `onPick(date)` gets a future Date.
export function chooseSnoozeTime(onPick) {
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setHours(9, 0, 0, 0);
  const input = el("input", {
    type: "datetime-local",
    id: "snooze-at",
    value: localValue(start),
    min: localValue(new Date()),
    "aria-label": "Snooze until",
  });
  const shown = el("p", { class: "muted", id: "snooze-readable" }, readable(start));
  const err = el("p", { class: "error", role: "alert" });
  const dlg = el("dialog", { class: "newconv", id: "snooze-dialog", "aria-label": "Snooze until" });
  const done = () => {
    dlg.close();
    dlg.remove();
  };
  input.addEventListener("input", () => {
    const d = new Date(input.value);
    shown.textContent = Number.isNaN(d.getTime()) ? "" : readable(d);
  });
  dlg.append(
    el("div", { class: "nc-head" }, el("h2", null, "Snooze until")),
    input,
    shown,
    el(
      "div",
      { class: "nc-actions" },
      el(
        "button",
        {
          type: "button",
          class: "primary",
          id: "snooze-confirm",
          onclick: () => {
            const d = new Date(input.value);
            if (Number.isNaN(d.getTime()) || d.getTime() <= Date.now()) {
              err.textContent = "Pick a time in the future.";
              return;
            }
            done();
            onPick(d);
          },
        },
        "Snooze",
      ),
      el("button", { type: "button", onclick: done }, "Cancel"),
    ),
    err,
  );
  document.body.append(dlg);
  dlg.showModal();
  input.focus();
}
