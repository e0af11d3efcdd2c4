// Form helpers shared by the admin pages (settings, automation, assignment/SLA/CSAT, campaigns):
// a labelled field, an error line, and "run this, show its error". Text only, through el().
import { api, confirmAction, el } from "./ui.js";

// [label, input, help?] for a two-column `form.stack` grid; spread it into the form.
export const field = (label, input, help) =>
  [el("label", { for: input.id }, label), input, help ? el("small", null, help) : null].filter(Boolean);

export const errorBox = () => el("p", { class: "error", role: "alert" });

// Runs `fn`; its error message (an API refusal) goes into `box`, which is emptied first.
export async function guarded(box, fn) {
  box.textContent = "";
  await reported(box, fn);
}

// Runs `fn`; its error message goes into `box` (what `box` said before stays until then).
export async function reported(box, fn) {
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

// An actionButton that DELETEs `path`, then runs `done()` (the section's redraw).
export const deleteButton = (label, err, path, done, confirm) =>
  actionButton(
    label,
    err,
    async () => {
      await api(path, { method: "DELETE" });
      await done();
    },
    confirm,
  );

// A `table.grid` with a header row of `heads` over `rows`.
export const grid = (id, heads, rows) =>
  el("table", { class: "grid", id }, el("tr", null, ...heads.map((h) => el("th", null, h))), ...rows);

// A table row; each cell that is not already a <td> goes into one.
export const row = (attrs, ...cells) =>
  el("tr", attrs, ...cells.map((c) => (c instanceof HTMLTableCellElement ? c : el("td", null, c))));

// The foot of a `form.stack`: its submit button (with `attrs`), then the error line.
export const submitRow = (label, err, attrs) => [
  el("div", { class: "full" }, el("button", { class: "primary", type: "submit", ...attrs }, label)),
  el("div", { class: "full" }, err),
];

// A checkbox labelled ` ${text}`; read back with checkedValues().
export const checkBox = (value, text, checked) =>
  el("label", null, el("input", { type: "checkbox", value: String(value), checked }), ` ${text}`);

// The values of the checked boxes inside `labels` (each a <label> around one checkbox).
export const checkedValues = (labels) =>
  labels
    .map((b) => b.querySelector("input"))
    .filter((i) => i?.checked)
    .map((i) => i.value);

// <option>s from [value, label] pairs, the one equal to `selected` selected.
export const options = (pairs, selected) =>
  pairs.map(([v, label]) => el("option", { value: String(v), selected: String(v) === String(selected) }, label));

// Submitting `form` runs `fn(submitter)` through guarded() instead of loading a page (the
// submitter: the button pressed, or the default one for Enter); a refusal shows in `err`.
export function onSubmit(form, err, fn) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(err, () => fn(ev.submitter));
  });
}
