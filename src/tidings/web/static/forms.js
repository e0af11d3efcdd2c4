// Form helpers shared by the admin pages (settings, automation, assignment/SLA/CSAT, campaigns):
// a labelled field, an error line, and "run this, show its error". Text only, through el().
import { confirmAction, el } from "./ui.js";

// [label, input, help?] for a two-column `form.stack` grid; spread it into the form.
export const field = (label, input, help) =>
  [el("label", { for: input.id }, label), input, help ? el("small", null, help) : null].filter(Boolean);

export const errorBox = () => el("p", { class: "error", role: "alert" });

// Runs `fn`; its error message (an API refusal) goes into `box`, which is emptied first.
export async function guarded(box, fn) {
  box.textContent = "";
  try {
    await fn();
  } catch (e) {
    box.textContent = e.message;
  }
}

// A button that runs `fn` through guarded(): a refusal shows in `err`. Destructive ones (Delete,
// Revoke) ask first and say what will happen: `confirm` is {title, consequences: [...]}.
const DESTRUCTIVE = new Set(["Delete", "Revoke"]);
export const actionButton = (label, err, fn, confirm) =>
  el(
    "button",
    {
      type: "button",
      class: DESTRUCTIVE.has(label) ? "danger-quiet" : "",
      onclick: async () => {
        if (confirm || DESTRUCTIVE.has(label)) {
          const ok = await confirmAction({
            title: confirm?.title || `${label} this?`,
            consequences: confirm?.consequences || ["This cannot be undone."],
            confirm: label,
          });
          if (!ok) return;
        }
        guarded(err, fn);
      },
    },
    label,
  );

// <option>s from [value, label] pairs, the one equal to `selected` selected.
export const options = (pairs, selected) =>
  pairs.map(([v, label]) => el("option", { value: String(v), selected: String(v) === String(selected) }, label));

// Submitting `form` runs `fn` through guarded() instead of loading a page: a refusal shows in `err`.
export function onSubmit(form, err, fn) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(err, fn);
  });
}
