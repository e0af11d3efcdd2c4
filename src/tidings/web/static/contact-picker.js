// Choosing contacts from the directory (the campaign audience's "selection"): search and
// filter as on the Contacts page, tick people, get their ids back. Names stay text (el()).
import { api, debounce, el } from "./ui.js";

// Resolves with the chosen ids (starting from `chosen`), or null when cancelled.
export function pickContacts(chosen = [], labels = []) {
  const picked = new Set(chosen.map(Number));
  return new Promise((resolve) => {
    const q = el("input", { type: "search", id: "cp-q", placeholder: "Search…", "aria-label": "Search contacts" });
    const label = el(
      "select",
      { id: "cp-label", "aria-label": "Label" },
      el("option", { value: "" }, "Any label"),
      ...labels.map((l) => el("option", { value: l.name }, l.name)),
    );
    const consent = el(
      "select",
      { id: "cp-consent", "aria-label": "Consent" },
      el("option", { value: "" }, "Any consent"),
      el("option", { value: "opted_in" }, "Opted in"),
      el("option", { value: "unknown" }, "Not asked"),
    );
    const list = el("ul", { class: "nc-list", id: "cp-list" });
    const count = el("span", { class: "muted", id: "cp-count" });
    const showCount = () => {
      count.textContent = `${picked.size} chosen`;
    };
    let rows = [];
    const load = async () => {
      const p = new URLSearchParams({ limit: "100" });
      if (q.value.trim()) p.set("q", q.value.trim());
      if (label.value) p.set("label", label.value);
      if (consent.value) p.set("consent", consent.value);
      rows = (await api(`/contacts/directory?${p}`)).data;
      list.replaceChildren(
        ...rows.map((c) =>
          el(
            "li",
            null,
            el(
              "label",
              { class: "cp-row" },
              el("input", {
                type: "checkbox",
                value: String(c.id),
                checked: picked.has(c.id),
                onchange: (ev) => {
                  if (ev.target.checked) picked.add(c.id);
                  else picked.delete(c.id);
                  showCount();
                },
              }),
              ` ${c.display_name} `,
              el("span", { class: "muted" }, c.phone || c.email || ""),
            ),
          ),
        ),
        ...(rows.length ? [] : [el("li", { class: "muted" }, "No contact matches.")]),
      );
    };
    const dialog = el("dialog", { class: "newconv", id: "contact-picker", "aria-label": "Choose contacts" });
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      el("div", { class: "nc-head" }, el("h2", null, "Choose contacts")),
      el("div", { class: "ct-tools" }, q, label, consent),
      el(
        "button",
        {
          type: "button",
          id: "cp-all",
          onclick: () => {
            for (const c of rows) picked.add(c.id);
            for (const box of list.querySelectorAll("input")) box.checked = true;
            showCount();
          },
        },
        "Choose all shown",
      ),
      list,
      el(
        "div",
        { class: "nc-actions" },
        el(
          "button",
          { type: "button", class: "primary", id: "cp-done", onclick: () => finish([...picked]) },
          "Use these",
        ),
        el("button", { type: "button", onclick: () => finish(null) }, "Cancel"),
        count,
      ),
    );
    dialog.addEventListener("cancel", () => resolve(null));
    q.addEventListener("input", debounce(load, 200));
    label.addEventListener("change", load);
    consent.addEventListener("change", load);
    document.body.append(dialog);
    dialog.showModal();
    showCount();
    load();
  });
}
