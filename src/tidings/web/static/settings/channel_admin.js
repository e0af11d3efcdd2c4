// Settings → Channels: edit a connected channel, test its connection, disable/enable and
// delete it — saying what happens to its conversations before anything is confirmed. The
// connect form shares the config inputs (human labels, help, the provider's guide).

import { humanLabel, onSubmitForm } from "../field-errors.js";
import { errorBox, field, guarded, options } from "../forms.js";
import { api, el } from "../ui.js";

let guides = null;
async function guideKinds() {
  if (guides === null) {
    try {
      guides = new Set(await api("/channels/guides"));
    } catch (_e) {
      guides = new Set();
    }
  }
  return guides;
}

// A link to the provider's setup guide, or null when the kind has none.
export async function guideLink(kind) {
  if (!(await guideKinds()).has(kind)) return null;
  return el(
    "a",
    { href: `/help/channels/${encodeURIComponent(kind)}`, target: "_blank", rel: "noopener", class: "guide-link" },
    `How to connect ${kind} (guide) ↗`,
  );
}

const schemaType = (prop) => {
  if (prop.type) return prop.type;
  const opt = (prop.anyOf || []).find((o) => o.type && o.type !== "null");
  return opt ? opt.type : "string";
};

// Labelled inputs for a kind's config, filled from `values` (secrets never come back: their
// inputs stay empty and say that empty keeps the stored value).
export function configFields(kind, values, prefix) {
  const props = kind.schema.properties || {};
  const required = new Set(kind.schema.required || []);
  const rows = [];
  for (const [name, prop] of Object.entries(props)) {
    const type = schemaType(prop);
    const secret = kind.secret_fields.includes(name);
    const id = `${prefix}-${name}`;
    const current = values ? values[name] : prop.default;
    let input;
    if (type === "boolean") input = el("input", { id, name, type: "checkbox", checked: current === true });
    else
      input = el("input", {
        id,
        name,
        type: secret ? "password" : type === "integer" || type === "number" ? "number" : "text",
        required: required.has(name) && !(values && secret),
        value: !secret && current != null && typeof current !== "object" ? String(current) : null,
        placeholder: values && secret ? "unchanged — type to replace" : null,
        autocomplete: "off",
      });
    input.dataset.type = type;
    input.dataset.field = `config.${name}`;
    input.classList.add("cfg");
    const help = [prop.description, values && secret ? "Stored encrypted; never shown again." : null]
      .filter(Boolean)
      .join(" · ");
    rows.push(...field(humanLabel(name, prop) + (required.has(name) ? " *" : ""), input, help || null));
  }
  return rows;
}

export function readConfigFields(form) {
  const config = {};
  for (const input of form.querySelectorAll("input.cfg")) {
    const t = input.dataset.type;
    if (t === "boolean") config[input.name] = input.checked;
    else if (input.value === "") continue;
    else if (t === "integer" || t === "number") config[input.name] = Number(input.value);
    else config[input.name] = input.value;
  }
  return config;
}

// The Edit / Test / Disable / Delete buttons of one channel row; forms open in `box`.
export function channelActions(c, { kinds, inboxes, box, done }) {
  return el(
    "span",
    { class: "row-actions" },
    el("button", { type: "button", class: "ch-edit", onclick: () => editForm(c, kinds, inboxes, box, done) }, "Edit"),
    el("button", { type: "button", class: "ch-test", onclick: () => testConnection(c, box) }, "Test"),
    el(
      "button",
      {
        type: "button",
        class: "ch-toggle",
        onclick: () => confirmPanel(c, c.active ? "disable" : "enable", box, done),
      },
      c.active ? "Disable" : "Enable",
    ),
    el(
      "button",
      { type: "button", class: "ch-delete danger", onclick: () => confirmPanel(c, "delete", box, done) },
      "Delete",
    ),
  );
}

async function editForm(c, kinds, inboxes, box, done) {
  const kind = kinds.find((k) => k.kind === c.kind);
  const err = errorBox();
  const name = el("input", { id: "edit-name", value: c.name, required: true, "data-field": "name" });
  const inboxPairs = inboxes.map((i) => [i.id, i.name]);
  const inbox = el("select", { id: "edit-inbox", "data-field": "inbox_id" }, ...options(inboxPairs, c.inbox_id));
  const form = el("form", { class: "stack", id: "channel-edit-form" });
  const link = await guideLink(c.kind);
  form.append(
    ...field("Name", name, "Shown to agents in the inbox and the composer."),
    ...field("Inbox", inbox, "Where this channel's conversations land."),
    ...(kind ? configFields(kind, c.config, "edit-cfg") : []),
    el("div", { class: "full" }, link),
    el(
      "div",
      { class: "full" },
      el("button", { type: "submit", class: "primary" }, "Save channel"),
      " ",
      el("button", { type: "button", onclick: () => box.replaceChildren() }, "Cancel"),
    ),
    el("div", { class: "full" }, err),
  );
  onSubmitForm(form, err, async () => {
    await api(`/channels/${c.id}`, {
      method: "PATCH",
      json: { name: name.value, inbox_id: Number(inbox.value), config: readConfigFields(form) },
    });
    await done(`Saved ${name.value}.`);
  });
  box.replaceChildren(el("h2", null, `Edit ${c.name}`), form);
  name.focus();
}

async function testConnection(c, box) {
  const out = el("p", { class: "muted", id: "channel-test", role: "status" }, `Asking the provider about ${c.name}…`);
  box.replaceChildren(el("h2", null, `Test ${c.name}`), out);
  try {
    const r = await api(`/channels/${c.id}/test`, { method: "POST" });
    out.className = r.ok === true ? "ok" : r.ok === false ? "error" : "muted";
    out.textContent = r.message;
  } catch (e) {
    out.className = "error";
    out.textContent = e.message;
  }
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

async function confirmPanel(c, action, box, done) {
  const err = errorBox();
  const impact = await api(`/channels/${c.id}/impact`);
  const counts = `${c.name} has ${plural(impact.conversations, "conversation", "conversations")} with ${plural(
    impact.messages,
    "message",
    "messages",
  )}${impact.pending_sends ? ` and ${plural(impact.pending_sends, "send", "sends")} still queued` : ""}.`;
  const what =
    action === "delete"
      ? impact.on_delete
      : action === "disable"
        ? impact.on_disable
        : "Sending and receiving on this channel start again.";
  const verb = { delete: "Delete channel", disable: "Disable channel", enable: "Enable channel" }[action];
  const go = el(
    "button",
    {
      type: "button",
      id: "channel-confirm",
      class: action === "delete" ? "danger" : "primary",
      onclick: () =>
        guarded(err, async () => {
          if (action === "delete") await api(`/channels/${c.id}`, { method: "DELETE" });
          else await api(`/channels/${c.id}/${action}`, { method: "POST" });
          await done(action === "delete" ? `Deleted ${c.name}.` : `${c.name} is ${action}d.`);
        }),
    },
    verb,
  );
  box.replaceChildren(
    el(
      "div",
      { class: "confirm-panel", role: "alertdialog", "aria-labelledby": "confirm-title" },
      el("h2", { id: "confirm-title" }, `${verb}: ${c.name}?`),
      el("p", { id: "channel-impact" }, counts),
      el("p", null, what),
      el("div", null, go, " ", el("button", { type: "button", onclick: () => box.replaceChildren() }, "Cancel")),
      err,
    ),
  );
  go.focus();
}
