// The Contacts page (entry module): search and filters over the contacts this agent may see,
// a detail pane to edit one (name, email, phone, attributes, notes), CSV import/export, and
// "New conversation". Every value reaches the page through el() (text, never HTML).
import { onSubmitForm } from "./field-errors.js";
import { errorBox, field } from "./forms.js";
import { openNewConversation } from "./new-conversation.js";
import { $, ago, api, channelIcon, debounce, el } from "./ui.js";

const PAGE = 50;
const S = { offset: 0, total: 0, rows: [], boot: null, openId: null };
const isAdmin = () => $("contacts-page").dataset.admin === "1";

const CONSENT = { opted_in: "Opted in", opted_out: "Opted out" };

function query(extra = {}) {
  const p = new URLSearchParams();
  const q = $("ct-q").value.trim();
  if (q) p.set("q", q);
  for (const [key, id] of [
    ["label", "ct-label"],
    ["channel", "ct-channel"],
    ["consent", "ct-consent"],
  ]) {
    if ($(id).value) p.set(key, $(id).value);
  }
  for (const [k, v] of Object.entries(extra)) p.set(k, String(v));
  return p;
}

async function load() {
  const page = await api(`/contacts/directory?${query({ offset: S.offset, limit: PAGE })}`);
  S.rows = page.data;
  S.total = page.total;
  $("ct-export").href = `/api/v1/contacts.csv?${query()}`;
  const body = $("ct-table").querySelector("tbody");
  body.replaceChildren(
    ...page.data.map((c) =>
      el(
        "tr",
        {
          dataset: { id: c.id },
          class: c.id === S.openId ? "open" : "",
          tabindex: "0",
          onclick: () => show(c.id),
          onkeydown: (ev) => {
            if (ev.key === "Enter") show(c.id);
          },
        },
        el("td", { class: "ct-name" }, c.display_name),
        el("td", null, c.phone || c.email || ""),
        el("td", null, ...[...new Set(c.identities.map((i) => i.channel_kind))].map((k) => channelIcon(k))),
        el("td", null, ...c.labels.map((name) => labelChip(name))),
        el("td", { class: `consent ${c.consent || "none"}` }, CONSENT[c.consent] || "—"),
        el("td", { title: c.last_activity_at || "" }, c.last_activity_at ? ago(c.last_activity_at) : "—"),
      ),
    ),
  );
  const empty = !page.data.length;
  $("ct-status").textContent = empty
    ? S.total === 0 && !query().toString()
      ? "No contacts yet. They appear when customers write in (try the customer phone), or import a CSV."
      : "No contact matches these filters."
    : "";
  $("ct-range").textContent = empty ? "" : `${S.offset + 1}–${S.offset + page.data.length} of ${S.total}`;
  $("ct-prev").disabled = S.offset === 0;
  $("ct-next").disabled = S.offset + PAGE >= S.total;
}

function labelChip(name) {
  const label = (S.boot?.labels || []).find((l) => l.name === name);
  const chip = el("span", { class: "label-chip" }, name);
  if (label?.color) chip.style.setProperty("--chip", label.color);
  return chip;
}

// ---- detail / edit --------------------------------------------------------------------------
function attrRow(name = "", value = "") {
  const row = el(
    "div",
    { class: "attr-row" },
    el("input", { class: "attr-name", value: name, placeholder: "name (e.g. plan)", "aria-label": "Attribute name" }),
    el("input", { class: "attr-value", value, placeholder: "value", "aria-label": "Attribute value" }),
    el(
      "button",
      { type: "button", class: "attr-remove", "aria-label": "Remove attribute", onclick: () => row.remove() },
      "×",
    ),
  );
  return row;
}

async function show(id) {
  S.openId = id;
  const c = await api(`/contacts/${id}/details`);
  const err = errorBox();
  const saved = el("p", { class: "ok", role: "status", id: "ct-saved" });
  const name = el("input", { id: "ct-f-name", value: c.name || "", "data-field": "name", maxlength: "300" });
  const email = el("input", { id: "ct-f-email", type: "email", value: c.email || "", "data-field": "email" });
  const phone = el("input", {
    id: "ct-f-phone",
    type: "tel",
    value: c.phone || "",
    "data-field": "phone",
    placeholder: "+49 151 2345678",
  });
  const attrs = el(
    "div",
    { class: "attrs", id: "ct-attrs", "data-field": "attributes" },
    ...Object.entries(c.attributes || {}).map(([k, v]) => attrRow(k, v)),
  );
  const notes = el("textarea", { id: "ct-f-notes", rows: "4", "data-field": "notes", maxlength: "10000" });
  notes.value = c.notes || "";
  const form = el(
    "form",
    { class: "ct-form", id: "ct-form" },
    ...field("Name", name),
    ...field("Email", email),
    ...field("Phone", phone),
    el("small", { class: "muted" }, "With the country code, or as written in the workspace's region."),
    el("span", { class: "label-like" }, "Attributes"),
    attrs,
    el("button", { type: "button", id: "ct-add-attr", onclick: () => attrs.append(attrRow()) }, "Add attribute"),
    el("small", { class: "muted" }, "Campaign segments match on these (e.g. plan = gold)."),
    ...field("Notes", notes),
    el("div", { class: "ct-form-actions" }, el("button", { type: "submit", class: "primary", id: "ct-save" }, "Save")),
    saved,
    err,
  );
  onSubmitForm(form, err, async () => {
    saved.textContent = "";
    const attributes = {};
    for (const row of attrs.querySelectorAll(".attr-row")) {
      const k = row.querySelector(".attr-name").value.trim();
      if (k) attributes[k] = row.querySelector(".attr-value").value;
    }
    await api(`/contacts/${id}`, {
      method: "PATCH",
      json: { name: name.value, email: email.value, phone: phone.value, attributes, notes: notes.value },
    });
    saved.textContent = "Saved.";
    await load();
  });
  showPane(
    el(
      "div",
      { class: "ct-detail-head" },
      backButton(),
      el("h2", { id: "ct-detail-name" }, c.display_name),
      el(
        "button",
        {
          type: "button",
          class: "primary",
          id: "ct-write",
          onclick: () => openNewConversation({ id: c.id, display_name: c.display_name }),
        },
        "New conversation",
      ),
    ),
    el(
      "p",
      { class: "muted" },
      ...c.identities.flatMap((i) => [channelIcon(i.channel_kind), ` ${i.display_name || i.address}  `]),
      c.identities.length ? null : "Not on any channel yet.",
    ),
    form,
  );
  for (const tr of $("ct-table").querySelectorAll("tr[data-id]"))
    tr.classList.toggle("open", Number(tr.dataset.id) === id);
}

// The detail pane (contact or new-contact form) shows `children` beside the list.
function showPane(...children) {
  $("ct-detail").replaceChildren(...children);
  $("ct-detail").hidden = false;
  $("contacts-page").classList.add("detail-open");
}
const backButton = () =>
  el("button", { type: "button", class: "ct-back", onclick: hide, "aria-label": "Back to the list" }, "←");

function hide() {
  S.openId = null;
  $("ct-detail").hidden = true;
  $("contacts-page").classList.remove("detail-open");
}

// ---- add / import ---------------------------------------------------------------------------
function addForm() {
  const err = errorBox();
  const name = el("input", { id: "ct-n-name", "data-field": "name", required: true });
  const phone = el("input", { id: "ct-n-phone", type: "tel", "data-field": "phone", placeholder: "+49 151 2345678" });
  const email = el("input", { id: "ct-n-email", type: "email", "data-field": "email" });
  const form = el(
    "form",
    { class: "ct-form", id: "ct-new-form" },
    ...field("Name", name),
    ...field("Phone", phone),
    ...field("Email", email),
    el("div", { class: "ct-form-actions" }, el("button", { type: "submit", class: "primary" }, "Add contact")),
    err,
  );
  onSubmitForm(form, err, async () => {
    const c = await api("/contacts", {
      method: "POST",
      json: { name: name.value, phone: phone.value || null, email: email.value || null },
    });
    await load();
    await show(c.id);
  });
  showPane(el("div", { class: "ct-detail-head" }, backButton(), el("h2", null, "Add a contact")), form);
  name.focus();
}

async function importCsv(file) {
  const status = $("ct-import-result");
  status.textContent = `Importing ${file.name}…`;
  try {
    const r = await api("/contacts/import", { method: "POST", body: file, headers: { "Content-Type": "text/csv" } });
    const lines = r.errors.slice(0, 10).map((e) => el("li", null, `line ${e.line}: ${e.message}`));
    status.replaceChildren(
      `Imported: ${r.created} new, ${r.updated} updated${r.errors.length ? `, ${r.errors.length} rows skipped:` : "."}`,
      lines.length ? el("ul", { id: "ct-import-errors" }, ...lines) : "",
    );
    S.offset = 0;
    await load();
  } catch (e) {
    status.textContent = e.message;
  }
}

async function start() {
  S.boot = await api("/ui/bootstrap");
  $("ct-label").append(...S.boot.labels.map((l) => el("option", { value: l.name }, l.name)));
  const kinds = [...new Set(S.boot.channels.map((c) => c.kind))];
  $("ct-channel").append(...kinds.map((k) => el("option", { value: k }, k)));
  const again = () => {
    S.offset = 0;
    load();
  };
  $("ct-q").addEventListener("input", debounce(again, 200));
  for (const id of ["ct-label", "ct-channel", "ct-consent"]) $(id).addEventListener("change", again);
  $("ct-prev").addEventListener("click", () => {
    S.offset = Math.max(0, S.offset - PAGE);
    load();
  });
  $("ct-next").addEventListener("click", () => {
    S.offset += PAGE;
    load();
  });
  $("ct-new-conv").addEventListener("click", () => openNewConversation());
  if (isAdmin()) {
    $("ct-add").addEventListener("click", addForm);
    $("ct-import").addEventListener("change", (ev) => {
      const file = ev.target.files[0];
      if (file) importCsv(file);
      ev.target.value = "";
    });
  }
  await load();
  const m = /^#contact\/(\d+)$/.exec(location.hash);
  if (m) await show(Number(m[1]));
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  $("ct-status").textContent = e.message;
});
