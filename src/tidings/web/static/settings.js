// Admin settings (the page's entry module): one section per hash (#channels, #agents, ...),
// built from the admin API. Automation, business hours and assignment/SLA/CSAT live in
// settings/*.js. As in the inbox, data is only ever set through textContent/attributes (el()).

import { onSubmitForm } from "./field-errors.js";
import {
  actionButton,
  checkBox,
  checkedValues,
  deleteButton,
  errorBox,
  field,
  grid,
  guarded,
  onSubmit,
  options,
  row,
  submitRow,
} from "./forms.js";
import { hours, rules } from "./settings/automation.js";
import { channelActions, configFields, guideLink, readConfigFields } from "./settings/channel_admin.js";
import { editCanned, editLabel, labelSwatch, webhookActions } from "./settings/edits.js";
import { inviteForm, resetButton } from "./settings/invite.js";
import { macros } from "./settings/macros.js";
import { renderService } from "./settings/service.js";
import { syncButtons } from "./settings/template_sync.js";
import { api, channelIcon, clock, el, fact, pageHead } from "./ui.js";

const main = document.getElementById("settings-main");
let notice = null;

const agentsById = async () => new Map((await api("/admin/agents")).map((a) => [a.id, a]));

function flash(text) {
  notice = text;
}

// ---- channels -------------------------------------------------------------------------------
async function channels() {
  const [list, kinds, inboxes] = await Promise.all([
    api("/channels"),
    api("/admin/channel_kinds"),
    api("/admin/inboxes"),
  ]);
  const inboxName = (id) => inboxes.find((i) => i.id === id)?.name || `#${id}`;
  const detail = el("div", { id: "channel-setup" });
  const done = async (text) => {
    flash(text);
    await render();
  };
  const table = grid(
    "channels-table",
    ["Name", "Kind", "Inbox", "Last inbound", "Last error", "Token expires", ""],
    list.map((c) =>
      row(
        { dataset: { id: c.id } },
        el("td", null, c.name, c.active ? null : el("span", { class: "badge off" }, " disabled")),
        el("td", null, channelIcon(c.kind), " ", c.kind),
        inboxName(c.inbox_id),
        el(
          "td",
          { class: c.health.last_inbound_at ? "health-ok" : "muted" },
          c.health.last_inbound_at ? clock(c.health.last_inbound_at) : "never",
        ),
        el(
          "td",
          {
            class: c.health.last_error || c.health.notice_severe ? "health-bad" : "muted",
            title: c.health.notice || c.health.last_error_at || "",
          },
          c.health.last_error || (c.health.notice_severe ? c.health.notice : "none"),
        ),
        c.health.token_expires_at ? clock(c.health.token_expires_at) : "—",
        el(
          "td",
          null,
          el("button", { type: "button", onclick: () => showSetup(c.id, detail) }, "Setup"),
          " ",
          channelActions(c, { kinds, inboxes, box: detail, done }),
        ),
      ),
    ),
  );
  const kindSel = el(
    "select",
    { id: "new-kind", name: "kind" },
    ...options(kinds.map((k) => [k.kind, `${k.label} (${k.kind})`])),
  );
  const inboxSel = el("select", { id: "new-inbox" }, ...options(inboxes.map((i) => [i.id, i.name])));
  const name = el("input", {
    id: "new-name",
    required: true,
    placeholder: "e.g. WhatsApp support line",
    "data-field": "name",
  });
  const cfg = el("div", { class: "full" });
  const err = errorBox();
  const form = el("form", { class: "stack", id: "connect-form" });
  const draw = async () => {
    const kind = kinds.find((k) => k.kind === kindSel.value);
    const fields = el("div", { class: "config-fields" }, ...configFields(kind, null, "cfg"));
    const link = await guideLink(kind.kind);
    cfg.replaceChildren(
      ...(link ? [link] : []),
      el(
        "p",
        { class: "muted" },
        `${kind.label} settings${kind.capabilities.service_window_hours ? ` · ${kind.capabilities.service_window_hours}-hour service window` : ""} · text up to ${kind.capabilities.text_max_length} characters`,
      ),
      fields,
      ...[sandboxHint(kind, fields)].filter(Boolean),
    );
  };
  kindSel.addEventListener("change", draw);
  form.append(
    ...field("Kind", kindSel),
    ...field("Name", name),
    ...field("Inbox", inboxSel),
    cfg,
    ...submitRow("Connect channel", err),
  );
  onSubmitForm(form, err, async () => {
    const made = await api("/channels", {
      method: "POST",
      json: {
        kind: kindSel.value,
        name: name.value,
        inbox_id: Number(inboxSel.value),
        config: readConfigFields(cfg),
      },
    });
    flash(`Connected ${made.name}. Give the provider the webhook URL shown under Setup.`);
    await render();
    await showSetup(made.id, document.getElementById("channel-setup"));
  });
  draw();
  main.append(el("h1", null, "Channels"), table, detail, el("h2", null, "Connect a channel"), form);
}

// With the sandbox on, a new user can connect a channel without a provider account: the
// provider's simulator on this server is one click away (its URL, as the sandbox binds it).
function sandboxHint(kind, fields) {
  const base = document.body.dataset.sandboxUrl;
  const input = fields.querySelector("#cfg-api_base_url");
  if (!base || !input) return null;
  const url = `${base}/${kind.kind}`;
  return el(
    "p",
    { class: "hint", id: "sandbox-hint" },
    `Trying Tidings? This server simulates ${kind.label}: `,
    el(
      "button",
      {
        type: "button",
        class: "link",
        id: "use-sandbox",
        onclick: () => {
          input.value = url;
          input.dispatchEvent(new Event("input", { bubbles: true }));
        },
      },
      "use the sandbox",
    ),
    ` (${url}) as the API base URL; the phone page then plays its customers.`,
  );
}

async function showSetup(id, box) {
  const c = await api(`/admin/channels/${id}/setup`);
  box.replaceChildren(
    el("h2", null, `Setup: ${c.name}`),
    el(
      "dl",
      { class: "facts" },
      ...fact("Webhook URL", el("span", { class: "copy", id: "setup-webhook" }, c.webhook_url)),
      ...(c.verify_token
        ? fact("Verify token", el("span", { class: "copy", id: "setup-verify" }, c.verify_token))
        : []),
      ...fact("Health", c.health.last_error ? `last error: ${c.health.last_error}` : "no errors recorded"),
      // What the provider says right now (LINE: push messages left this month).
      ...(c.health.provider ? fact("Provider", c.health.provider, { id: "setup-provider" }) : []),
      // What the provider said about the channel itself (e.g. a Messenger policy block).
      ...(c.health.notice
        ? fact("Provider notice", `${clock(c.health.notice_at)} · ${c.health.notice}`, {
            id: "setup-notice",
            class: c.health.notice_severe ? "health-bad" : "",
            title: c.health.notice_at || "",
          })
        : []),
      ...fact(
        "Settings",
        Object.entries(c.config)
          .map(([k, v]) => `${k}: ${v}`)
          .join(" · "),
      ),
    ),
    el(
      "ol",
      { class: "muted" },
      el("li", null, "In the provider's console, set the callback / webhook URL above."),
      c.verify_token
        ? el("li", null, "Use the verify token above when the provider asks for one (it checks it with a GET).")
        : null,
      el("li", null, "Send a test message; “Last inbound” above updates when it arrives."),
    ),
  );
}

// ---- agents ---------------------------------------------------------------------------------
async function agents() {
  const [list, inboxes] = await Promise.all([api("/admin/agents"), api("/admin/inboxes")]);
  const err = errorBox();
  const linkOut = el("div", { id: "agent-link" });
  const roleSel = (a) => {
    const s = el(
      "select",
      { "aria-label": `Role of ${a.name}` },
      ...options(["agent", "admin", "owner"].map((r) => [r, r])),
    );
    s.value = a.role;
    s.addEventListener("change", () =>
      guarded(err, async () => {
        await api(`/admin/agents/${a.id}`, { method: "PATCH", json: { role: s.value } });
      }),
    );
    return s;
  };
  const table = grid(
    "agents-table",
    ["Name", "Email", "Role", "Inboxes", "Active", ""],
    list.map((a) =>
      row(
        null,
        a.name,
        a.email,
        roleSel(a),
        a.inbox_ids.map((id) => inboxes.find((i) => i.id === id)?.name).join(", ") || "—",
        el("input", {
          type: "checkbox",
          checked: a.active,
          "aria-label": "Active",
          onchange: (ev) =>
            guarded(err, async () => {
              await api(`/admin/agents/${a.id}`, { method: "PATCH", json: { active: ev.target.checked } });
            }),
        }),
        resetButton(a, linkOut, err),
      ),
    ),
  );
  const f = {
    name: el("input", { id: "a-name", required: true }),
    email: el("input", { id: "a-email", type: "email", required: true }),
    role: el(
      "select",
      { id: "a-role" },
      el("option", { value: "agent" }, "agent"),
      el("option", { value: "admin" }, "admin"),
    ),
    password: el("input", {
      id: "a-password",
      type: "password",
      required: true,
      minlength: "10",
      autocomplete: "new-password",
    }),
  };
  const form = el(
    "form",
    { class: "stack", id: "agent-form" },
    ...field("Name", f.name),
    ...field("Email", f.email),
    ...field("Role", f.role),
    ...field("Password", f.password, "At least 10 characters; they can change it later on their profile page."),
    ...submitRow("Add agent", err),
  );
  onSubmit(form, err, async () => {
    await api("/admin/agents", {
      method: "POST",
      json: { name: f.name.value, email: f.email.value, role: f.role.value, password: f.password.value },
    });
    flash(`Added ${f.name.value}. Add them to inboxes under Inboxes.`);
    await render();
  });
  main.append(
    el("h1", null, "Agents"),
    table,
    linkOut,
    el("h2", null, "Invite an agent"),
    el("p", { class: "muted" }, "They get a link to choose their own password; nobody else knows it."),
    inviteForm(inboxes, render),
    el("h2", null, "Or add an agent with a password"),
    form,
  );
}

// ---- inboxes and teams (same shape: a name and a member list) ------------------------------
async function groups(kind) {
  const path = kind === "inboxes" ? "/admin/inboxes" : "/admin/teams";
  const [list, people] = await Promise.all([api(path), agentsById()]);
  const err = errorBox();
  const blocks = list.map((g) => {
    const boxes = [...people.values()].map((a) => checkBox(a.id, a.name, g.agent_ids.includes(a.id)));
    const form = el(
      "form",
      { class: "group", dataset: { id: g.id } },
      el("h2", null, g.name),
      el("div", { class: "checks" }, ...boxes),
      el("button", { type: "submit" }, "Save members"),
    );
    onSubmit(form, err, async () => {
      const ids = checkedValues(boxes).map(Number);
      await api(`${path}/${g.id}/members`, { method: "PUT", json: { agent_ids: ids } });
      flash(`Saved ${g.name}.`);
      await render();
    });
    return form;
  });
  const name = el("input", { id: "g-name", required: true });
  const form = el(
    "form",
    { class: "stack", id: "group-form" },
    ...field("Name", name),
    el(
      "div",
      { class: "full" },
      el("button", { class: "primary", type: "submit" }, kind === "inboxes" ? "Create inbox" : "Create team"),
    ),
  );
  onSubmit(form, err, async () => {
    await api(path, { method: "POST", json: { name: name.value, agent_ids: [] } });
    await render();
  });
  main.append(
    ...pageHead(
      kind === "inboxes" ? "Inboxes and membership" : "Teams",
      kind === "inboxes"
        ? "Agents see only the conversations of inboxes they belong to; owners and admins see all."
        : "Teams group agents for assignment and reports.",
    ),
    err,
    ...blocks,
    el("h2", null, kind === "inboxes" ? "New inbox" : "New team"),
    form,
  );
}

// ---- canned replies and labels --------------------------------------------------------------
async function cannedReplies() {
  const boot = await api("/ui/bootstrap");
  const err = errorBox();
  const table = grid(
    "canned-table",
    ["Shortcut", "Reply", ""],
    boot.canned_replies.map((r) => {
      const tr = row({ dataset: { id: r.id } }, `/${r.short_code}`, r.content);
      tr.append(
        el(
          "td",
          null,
          editCanned(tr, r, render, err),
          " ",
          deleteButton("Delete", err, `/admin/canned_replies/${r.id}`, render, {
            title: `Delete the canned reply /${r.short_code}?`,
            consequences: [
              "No agent can insert it any more; rules that send it will fail.",
              "Messages already sent with it stay as they are.",
              "This cannot be undone.",
            ],
          }),
        ),
      );
      return tr;
    }),
  );
  const code = el("input", { id: "cr-code", required: true, placeholder: "thanks" });
  const content = el("textarea", { id: "cr-content", required: true, rows: "3" });
  const form = el(
    "form",
    { class: "stack", id: "canned-form" },
    ...field("Shortcut", code, "Agents type /shortcut in the composer."),
    ...field("Reply", content),
    ...submitRow("Add canned reply", err),
  );
  onSubmit(form, err, async () => {
    await api("/admin/canned_replies", { method: "POST", json: { short_code: code.value, content: content.value } });
    await render();
  });
  main.append(el("h1", null, "Canned replies"), table, el("h2", null, "New canned reply"), form);
}

async function labels() {
  const boot = await api("/ui/bootstrap");
  const err = errorBox();
  const table = grid(
    "labels-table",
    ["Label", "Colour", ""],
    boot.labels.map((l) => {
      const tr = row(
        { dataset: { id: l.id } },
        el("span", { class: "label" }, l.name),
        el("td", null, labelSwatch(l.color), ` ${l.color}`),
      );
      tr.append(
        el(
          "td",
          null,
          editLabel(tr, l, render, err),
          " ",
          deleteButton("Delete", err, `/admin/labels/${l.id}`, render, {
            title: `Delete the label “${l.name}”?`,
            consequences: [
              "It is removed from every conversation that has it.",
              "Rules, saved views and campaigns that use it stop matching.",
              "This cannot be undone.",
            ],
          }),
        ),
      );
      return tr;
    }),
  );
  const name = el("input", { id: "l-name", required: true });
  const color = el("input", { id: "l-color", type: "color", value: "#2563eb" });
  const form = el(
    "form",
    { class: "stack", id: "label-form" },
    ...field("Name", name),
    ...field("Colour", color),
    ...submitRow("Add label", err),
  );
  onSubmit(form, err, async () => {
    await api("/admin/labels", { method: "POST", json: { name: name.value, color: color.value } });
    await render();
  });
  main.append(el("h1", null, "Labels"), table, el("h2", null, "New label"), form);
}

// ---- outgoing webhooks ----------------------------------------------------------------------
const EVENTS = ["message.created", "message.updated", "conversation.created", "conversation.updated"];
async function webhooks() {
  const subs = await api("/webhook_subscriptions");
  const err = errorBox();
  const log = el("div", { id: "delivery-log" });
  const table = grid(
    "subs-table",
    ["URL", "Events", "State", ""],
    subs.map((s) =>
      row(
        null,
        s.url,
        s.events.join(", "),
        el("td", { class: s.active ? "health-ok" : "muted" }, s.active ? "active" : "paused"),
        el(
          "td",
          null,
          el("button", { type: "button", onclick: () => deliveries(s, log) }, "Delivery log"),
          " ",
          webhookActions(s, render, err),
        ),
      ),
    ),
  );
  const url = el("input", {
    id: "w-url",
    type: "url",
    required: true,
    placeholder: "https://example.com/hooks/tidings",
  });
  const checks = EVENTS.map((e) => checkBox(e, e, true));
  const once = el("div");
  const form = el(
    "form",
    { class: "stack", id: "webhook-form" },
    ...field("URL", url),
    el("span", null, "Events"),
    el("div", { class: "checks" }, ...checks),
    el("div", { class: "full" }, el("button", { class: "primary", type: "submit" }, "Subscribe")),
    el("div", { class: "full" }, err, once),
  );
  onSubmit(form, err, async () => {
    const events = checkedValues(checks);
    const made = await api("/webhook_subscriptions", { method: "POST", json: { url: url.value, events } });
    await render();
    main.append(secretOnce("webhook-secret", "Signing secret (shown once): ", made.secret));
  });
  main.append(
    ...pageHead(
      "Outgoing webhooks",
      "Each POST is signed (X-Tidings-Signature, HMAC-SHA256 with the secret) and retried with back-off.",
    ),
    table,
    log,
    el("h2", null, "New subscription"),
    form,
  );
}

async function deliveries(sub, box) {
  const rows = await api(`/webhook_subscriptions/${sub.id}/deliveries?limit=50`);
  const err = errorBox();
  box.replaceChildren(
    el("h2", null, `Delivery log: ${sub.url}`),
    err,
    grid(
      "deliveries-table",
      ["Event", "State", "Attempts", "HTTP", "Error", "Created", ""],
      rows.map((d) =>
        row(
          null,
          d.event_type,
          el("td", { class: d.state === "failed" ? "health-bad" : "" }, d.state),
          String(d.attempts),
          d.last_status == null ? "—" : String(d.last_status),
          d.last_error || "",
          clock(d.created_at),
          actionButton("Replay", err, async () => {
            await api(`/webhook_deliveries/${d.id}/replay`, { method: "POST" });
            await deliveries(sub, box);
          }),
        ),
      ),
    ),
  );
}

// A secret shown once, right after it was made (webhook signing secret, API token).
const secretOnce = (id, text, secret) =>
  el("div", { class: "secret-once", id }, text, el("span", { class: "copy" }, secret));

// ---- API tokens -----------------------------------------------------------------------------
async function tokens() {
  const list = await api("/admin/api_tokens");
  const err = errorBox();
  const table = grid(
    "tokens-table",
    ["Name", "Agent", "Created", "Last used", ""],
    list.map((t) =>
      row(
        null,
        t.name,
        t.agent_name,
        clock(t.created_at),
        t.last_used_at ? clock(t.last_used_at) : "never",
        deleteButton("Revoke", err, `/admin/api_tokens/${t.id}`, render, {
          title: `Revoke the token “${t.name}”?`,
          consequences: [
            "Every integration using it is refused at once (HTTP 401).",
            "This cannot be undone: create a new token to reconnect them.",
          ],
        }),
      ),
    ),
  );
  const name = el("input", { id: "t-name", required: true, placeholder: "CRM sync" });
  const form = el(
    "form",
    { class: "stack", id: "token-form" },
    ...field("Name", name),
    ...submitRow("Create token", err),
  );
  onSubmit(form, err, async () => {
    const made = await api("/api_tokens", { method: "POST", json: { name: name.value } });
    await render();
    main.append(secretOnce("token-once", "Your new token (shown once): ", made.token));
  });
  main.append(
    ...pageHead("API tokens", "Send as Authorization: Bearer <token>. See /api/v1/docs."),
    table,
    el("h2", null, "New token"),
    form,
  );
}

async function templates() {
  const [rows, sync] = await Promise.all([
    api("/admin/templates"),
    syncButtons(async (text) => {
      flash(text);
      await render();
    }),
  ]);
  const body = (t) =>
    (t.components || [])
      .filter((c) => c?.type && String(c.type).toUpperCase() === "BODY")
      .map((c) => c.text || "")
      .join(" ");
  main.append(
    ...pageHead(
      "Templates",
      "Provider message templates, kept in sync by their channels (e.g. WhatsApp template status webhooks). They are what can be sent once a service window has closed.",
    ),
    ...(sync ? [sync] : []),
    rows.length
      ? grid(
          "templates-table",
          ["Channel", "Name", "Language", "Category", "Status", "Body"],
          rows.map((t) =>
            row(
              null,
              t.channel_name,
              t.name,
              t.language,
              t.category,
              el(
                "td",
                { class: t.status === "APPROVED" || t.status === "approved" ? "health-ok" : "health-bad" },
                t.status,
              ),
              body(t),
            ),
          ),
        )
      : el("p", null, "No templates yet."),
  );
}

const SECTIONS = {
  service: () => renderService(main),
  channels,
  agents,
  inboxes: () => groups("inboxes"),
  teams: () => groups("teams"),
  canned: cannedReplies,
  labels,
  webhooks,
  tokens,
  templates,
  automation: () => rules(main),
  macros: () => macros(main),
  hours: () => hours(main),
};

async function render() {
  const name = (location.hash || "#channels").slice(1);
  const section = SECTIONS[name] || channels;
  for (const a of document.querySelectorAll("nav.side a"))
    a.setAttribute("aria-current", a.getAttribute("href") === `#${name}` ? "page" : "false");
  main.replaceChildren();
  if (notice) {
    main.append(el("p", { class: "notice", role: "status" }, notice));
    notice = null;
  }
  try {
    await section();
  } catch (e) {
    main.append(el("p", { class: "error" }, e.message));
  }
  document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", render);
render();
