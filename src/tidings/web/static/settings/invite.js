// Settings → Agents: invite an agent (they choose their own password on a one-time link,
// shown here once) and make a password-reset link for an existing one.

import { guardedForm } from "../field-errors.js";
import { errorBox, field } from "../forms.js";
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
      onclick: async () => {
        err.textContent = "";
        try {
          const r = await api(`/admin/agents/${agent.id}/password_reset`, { method: "POST" });
          out.replaceChildren(linkBox("reset-link", `Password reset link for ${agent.name}`, r.url, r.expires_at));
        } catch (e) {
          err.textContent = e.message;
        }
      },
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
  const boxes = inboxes.map((i) =>
    el(
      "label",
      null,
      el("input", { type: "checkbox", value: String(i.id), checked: inboxes.length === 1 }),
      ` ${i.name}`,
    ),
  );
  const form = el(
    "form",
    { class: "stack", id: "invite-form" },
    ...field("Name", f.name),
    ...field("Email", f.email),
    ...field("Role", f.role),
    el("span", null, "Inboxes"),
    el("div", { class: "checks", "data-field": "inboxes" }, ...boxes),
    el("div", { class: "full" }, el("button", { class: "primary", type: "submit" }, "Invite")),
    el("div", { class: "full" }, err),
    el("div", { class: "full" }, out),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guardedForm(form, err, async () => {
      const r = await api("/admin/agents/invite", {
        method: "POST",
        json: {
          name: f.name.value,
          email: f.email.value,
          role: f.role.value,
          inboxes: boxes
            .map((b) => b.querySelector("input"))
            .filter((i) => i.checked)
            .map((i) => Number(i.value)),
        },
      });
      await done();
      const again = document.getElementById("invite-form");
      (again?.querySelector(".full:last-child") || out).replaceChildren(
        linkBox("invite-link", `Invitation for ${r.agent.name}`, r.invite_url, r.expires_at),
      );
    });
  });
  return form;
}
