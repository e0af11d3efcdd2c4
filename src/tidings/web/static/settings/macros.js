// Settings → Macros: a named list of automation actions that any agent runs on a conversation
// from the command palette (Ctrl/⌘+K). The action rows are the rule builder's (automation.js),
// less "Call webhook", which a macro cannot do. Text reaches the page only through el().

import { deleteButton, errorBox, field, grid, onSubmit, row, submitRow } from "../forms.js";
import { api, el, pageHead } from "../ui.js";
import { actionRow, vocabulary } from "./automation.js";

export async function macros(main) {
  const [list, v] = await Promise.all([api("/macros"), vocabulary()]);
  const err = errorBox();
  const redraw = async () => {
    main.replaceChildren();
    await macros(main);
  };
  const name = el("input", { id: "macro-name", required: true, maxlength: "80", placeholder: "e.g. Refund triage" });
  const acts = el("div", { id: "macro-actions" }, actionRow(v, null, true));
  const form = el(
    "form",
    { class: "stack", id: "macro-form" },
    ...field("Name", name),
    el("label", null, "Actions"),
    el(
      "div",
      { class: "full" },
      acts,
      el(
        "button",
        { type: "button", id: "macro-add-action", onclick: () => acts.append(actionRow(v, null, true)) },
        "+ Action",
      ),
    ),
    ...submitRow("Save macro", err, { id: "macro-save" }),
  );
  onSubmit(form, err, async () => {
    await api("/macros", {
      method: "POST",
      json: { name: name.value, actions: [...acts.children].map((r) => r.readValue()) },
    });
    await redraw();
  });

  const table = grid(
    "macros-table",
    ["Name", "Actions", ""],
    list.map((m) =>
      row(
        { dataset: { id: m.id } },
        m.name,
        el("ol", { class: "steps" }, ...m.steps.map((s) => el("li", null, s))),
        deleteButton("Delete", err, `/macros/${m.id}`, redraw, {
          title: `Delete the macro “${m.name}”?`,
          consequences: [
            "It disappears from every agent's command palette at once.",
            "Conversations it already changed stay as they are.",
            "This cannot be undone.",
          ],
        }),
      ),
    ),
  );
  main.append(
    ...pageHead(
      "Macros",
      "A macro runs its actions on the open conversation in one go: press Ctrl+K (⌘K on a Mac) in the inbox and pick “Run macro”. Each action passes the same checks as when an agent does it; one that is refused is reported and the rest still run.",
    ),
    list.length ? table : el("p", { id: "macros-empty" }, "No macros yet. Create one below."),
    el("h2", null, "New macro"),
    form,
  );
}
