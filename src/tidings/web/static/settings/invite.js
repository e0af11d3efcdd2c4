// Settings → Agents: invite an agent (they choose their own password on a one-time link,
// shown here once) and make a password-reset link for an existing one.

import { onSubmitForm } from "../field-errors.js";
import { checkBox, checkedValues, errorBox, field, guarded, submitRow } from "../forms.js";
import { api, el } from "../ui.js";

const linkBox = (id, title, url, expires) =>
  el(
    "div",
    { class: "secret-once", id, role: "status" },
    el("strong", null, title),
    el(
      "p",
      null,
      "Send this link privately; it is shown only now and works once, until ",
      new Date(expires).toLocaleString(),
      ".",
    ),
    el("input", {
      class: "copy-link",
      readonly: true,
      value: url,
      "aria-label": "Link",
      onfocus: (ev) => ev.target.select(),
    }),
  );

// A "Reset password" button for one agent; the link appears in `out`.
export function resetButton(agent, out, err) {
  return el(
    "button",
    {
      type: "button",
      class: "reset-password",
      onclick: () =>
        guarded(err, async () => {
          const r = await api(`/admin/agents/${agent.id}/password_reset`, { method: "POST" });
          out.replaceChildren(linkBox("reset-link", `Password reset link for ${agent.name}`, r.url, r.expires_at));
        }),
    },
    "Reset password",
  );
}

export function inviteForm(inboxes, done) {
  const err = errorBox();
  const out = el("div");
  const f = {
    name: el("input", { id: "i-name", required: true, "data-field": "name" }),
    email: el("input", { id: "i-email", type: "email", required: true, "data-field": "email" }),
    role: el(
      "select",
      { id: "i-role", "data-field": "role" },
      el("option", { value: "agent" }, "Agent — works in their inboxes"),
      el("option", { value: "admin" }, "Admin — also changes settings"),
    ),
  };
  const boxes = inboxes.map((i) => checkBox(i.id, i.name, inboxes.length === 1));
  const form = el(
    "form",
    { class: "stack", id: "invite-form" },
    ...field("Name", f.name),
    ...field("Email", f.email),
    ...field("Role", f.role),
    el("span", null, "Inboxes"),
    el("div", { class: "checks", "data-field": "inboxes" }, ...boxes),
    ...submitRow("Invite", err),
    el("div", { class: "full" }, out),
  );
  onSubmitForm(form, err, async () => {
    const r = await api("/admin/agents/invite", {
      method: "POST",
      json: {
        name: f.name.value,
        email: f.email.value,
        role: f.role.value,
        inboxes: checkedValues(boxes).map(Number),
      },
    });
    await done();
    const again = document.getElementById("invite-form");
    (again?.querySelector(".full:last-child") || out).replaceChildren(
      linkBox("invite-link", `Invitation for ${r.agent.name}`, r.invite_url, r.expires_at),
    );
  });
  return form;
}
