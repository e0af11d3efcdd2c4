// "New conversation" (from a contact or the inbox): pick the contact, pick a channel it can be
// reached on, then write — free text where the channel's service window is open, an approved
// template where it is closed. What may be sent is the server's decision (the conversation's
// GET …/channels, the same verdict POST …/messages applies); this dialog only shows it.
import { errorBox, guarded } from "./forms.js";
import { api, channelIcon, debounce, el } from "./ui.js";

let dialog = null;

function shell() {
  if (dialog) return dialog;
  dialog = el("dialog", { id: "new-conversation", class: "newconv", "aria-labelledby": "nc-title" });
  document.body.append(dialog);
  return dialog;
}

const close = () => dialog?.close();

function frame(title, ...body) {
  const d = shell();
  d.replaceChildren(
    el(
      "div",
      { class: "nc-head" },
      el("h2", { id: "nc-title" }, title),
      el("button", { type: "button", class: "nc-close", "aria-label": "Close", onclick: close }, "×"),
    ),
    ...body.filter(Boolean),
  );
  if (!d.open) d.showModal();
}

// Opens the dialog; with `contact` ({id, display_name}) it starts at the channel choice.
export async function openNewConversation(contact) {
  if (contact) return chooseChannel(contact);
  const q = el("input", {
    id: "nc-search",
    type: "search",
    placeholder: "Name, phone, email…",
    "aria-label": "Find a contact",
    autocomplete: "off",
  });
  const list = el("ul", { class: "nc-list", id: "nc-contacts" });
  const find = async () => {
    const page = await api(`/contacts/directory?limit=20&q=${encodeURIComponent(q.value.trim())}`);
    list.replaceChildren(
      ...page.data.map((c) =>
        el(
          "li",
          null,
          el(
            "button",
            { type: "button", class: "nc-pick", onclick: () => chooseChannel(c) },
            el("strong", null, c.display_name),
            el("span", { class: "muted" }, ` ${c.phone || c.email || ""}`),
          ),
        ),
      ),
      ...(page.data.length ? [] : [el("li", { class: "muted" }, "No contact matches. Add one on the Contacts page.")]),
    );
  };
  q.addEventListener("input", debounce(find, 200));
  frame("New conversation", el("label", { for: "nc-search" }, "Who to write to"), q, list);
  q.focus();
  await find();
}

async function chooseChannel(contact) {
  const err = errorBox();
  const reach = await api(`/contacts/${contact.id}/reach`);
  const buttons = reach.map((r) =>
    el(
      "button",
      {
        type: "button",
        class: "nc-channel",
        disabled: !r.reachable,
        dataset: { kind: r.kind, id: r.channel_id },
        title: r.reason || "",
        onclick: () =>
          guarded(err, async () => {
            const started = await api(`/contacts/${contact.id}/conversations`, {
              method: "POST",
              json: { channel_id: r.channel_id },
            });
            await compose(contact, r, started.conversation_id);
          }),
      },
      channelIcon(r.kind),
      el("span", null, ` ${r.name}`),
      r.reachable ? null : el("small", { class: "muted" }, ` — ${r.reason}`),
    ),
  );
  frame(
    `Write to ${contact.display_name}`,
    el("p", { class: "muted" }, "On which channel?"),
    el("div", { class: "nc-channels", id: "nc-channels" }, ...buttons),
    reach.length ? null : el("p", { class: "muted" }, "No channel is connected yet (Settings → Channels)."),
    err,
  );
}

function fill(body, values) {
  return body.replace(/\{\{\s*(\d+)\s*\}\}/g, (_m, n) => values[Number(n) - 1] || `{{${n}}}`);
}

async function compose(contact, channel, conversationId) {
  const err = el("p", { class: "error", role: "alert", id: "nc-error" });
  const options = await api(`/conversations/${conversationId}/channels`);
  const verdict = options.find((o) => o.channel_id === channel.channel_id);
  const open = () => {
    close();
    location.href = `/inbox#c/${conversationId}`;
  };
  const back = el("button", { type: "button", onclick: () => chooseChannel(contact) }, "Back");
  const view = el("button", { type: "button", id: "nc-open", onclick: open }, "Open conversation");
  // A send button: POSTs `body()` to `path`, then opens the conversation; refusals show in `err`.
  const sendButton = (id, label, path, body, disabled) =>
    el(
      "button",
      {
        type: "button",
        class: "primary",
        id,
        disabled,
        onclick: () =>
          guarded(err, async () => {
            await api(path, { method: "POST", json: body() });
            open();
          }),
      },
      label,
    );
  if (verdict?.can_send_text) {
    const text = el("textarea", { id: "nc-text", rows: "4", "aria-label": "Message", maxlength: "4096" });
    const send = sendButton("nc-send", "Send", `/conversations/${conversationId}/messages`, () => {
      if (!text.value.trim()) throw new Error("Write a message first.");
      return { text: text.value, channel_id: channel.channel_id };
    });
    frame(
      `Write to ${contact.display_name}`,
      el("p", { class: "nc-window open" }, `${channel.name}: you can write freely.`),
      text,
      el("div", { class: "nc-actions" }, send, back, view),
      err,
    );
    text.focus();
    return;
  }
  if (verdict?.needs_template) {
    const all = await api(`/ui/conversations/${conversationId}/templates`);
    const list = all.filter((t) => t.channel_id === channel.channel_id);
    const sel = el(
      "select",
      { id: "nc-template", "aria-label": "Template" },
      ...list.map((t) => el("option", { value: String(t.id) }, `${t.name} (${t.language})`)),
    );
    const params = el("div", { class: "nc-params", id: "nc-params" });
    const preview = el("p", { class: "nc-preview", id: "nc-preview" });
    const draw = () => {
      const t = list.find((x) => String(x.id) === sel.value);
      params.replaceChildren();
      if (!t) return;
      for (let i = 1; i <= t.parameters; i++) {
        params.append(
          el("input", {
            class: "nc-param",
            placeholder: `{{${i}}}`,
            "aria-label": `Value ${i}`,
            oninput: () => redraw(),
          }),
        );
      }
      redraw();
    };
    const values = () => [...params.querySelectorAll("input")].map((i) => i.value);
    const redraw = () => {
      const t = list.find((x) => String(x.id) === sel.value);
      preview.textContent = t ? fill(t.body, values()) : "";
    };
    sel.addEventListener("change", draw);
    const send = sendButton(
      "nc-send-template",
      "Send template",
      `/ui/conversations/${conversationId}/templates`,
      () => ({ template_id: Number(sel.value), params: values() }),
      !list.length,
    );
    frame(
      `Write to ${contact.display_name}`,
      el(
        "p",
        { class: "nc-window closed", id: "nc-window" },
        `${channel.name}: the service window is closed — start with an approved template.`,
      ),
      list.length
        ? sel
        : el("p", { class: "muted" }, "No approved templates on this channel yet (Settings → Templates)."),
      params,
      preview,
      el("div", { class: "nc-actions" }, send, back, view),
      err,
    );
    draw();
    return;
  }
  frame(
    `Write to ${contact.display_name}`,
    el("p", { class: "error", id: "nc-window" }, verdict?.reason || "Nothing can be sent on this channel now."),
    el("div", { class: "nc-actions" }, back, view),
  );
}
