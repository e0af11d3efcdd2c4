// The profile page: one's own name, availability and notification choices. The password form
// above is a plain server form (it works without this module).
import { onSubmitForm } from "./field-errors.js";
import { errorBox } from "./forms.js";
import { $, api, el } from "./ui.js";

const NOTIFY = [
  ["mentions", "When someone @-mentions me in a note"],
  ["assigned", "When a conversation is assigned to me"],
  ["replies", "When a customer replies in my conversations"],
  ["desktop", "Show desktop notifications (the browser asks once)"],
  ["sound", "Play a sound"],
];

// A titled form (#<name>-form) in `boxId`: `fields`, the submit button, "Saved." (#<name>-saved)
// once `save(form)` went through, or the refusal at its field (else under the button).
function section(boxId, title, name, fields, button, save) {
  const err = errorBox();
  const ok = el("p", { class: "ok", role: "status", id: `${name}-saved` });
  const form = el(
    "form",
    { id: `${name}-form` },
    ...fields,
    el("button", { type: "submit", class: "primary" }, button),
    ok,
    err,
  );
  onSubmitForm(form, err, async () => {
    ok.textContent = "";
    await save(form);
    ok.textContent = "Saved.";
  });
  $(boxId).replaceChildren(el("h2", null, title), form);
}

function details(me) {
  const name = el("input", { id: "p-name", value: me.name, required: true, maxlength: "200", "data-field": "name" });
  const avail = el(
    "select",
    { id: "p-availability", "data-field": "availability" },
    ...[
      ["online", "Online — receive new conversations"],
      ["away", "Away — keep mine, get no new ones"],
      ["offline", "Offline — mine go back to the queue"],
    ].map(([v, label]) => el("option", { value: v, selected: v === me.availability }, label)),
  );
  const fields = [el("label", null, "Name", name), el("label", null, "Availability", avail)];
  section("profile-details", "Your details", "details", fields, "Save", async () => {
    const saved = await api("/me/profile", { method: "PATCH", json: { name: name.value } });
    if (avail.value !== me.availability) {
      await api("/agents/me/availability", { method: "PUT", json: { availability: avail.value } });
      me.availability = avail.value;
    }
    $("profile-name").textContent = saved.name;
    const link = $("profile-link");
    if (link) link.textContent = saved.name;
  });
}

function notifications(me) {
  const boxes = NOTIFY.map(([key, label]) =>
    el("label", null, el("input", { type: "checkbox", name: key, checked: me.notify[key] }), label),
  );
  const fields = [el("div", { class: "checks-col" }, ...boxes)];
  section("profile-notify", "Notifications", "notify", fields, "Save notifications", async (form) => {
    const notify = {};
    for (const b of form.querySelectorAll("input[type=checkbox]")) notify[b.name] = b.checked;
    if (notify.desktop && "Notification" in window && Notification.permission === "default") {
      await Notification.requestPermission();
    }
    await api("/me/profile", { method: "PATCH", json: { notify } });
  });
}

async function start() {
  const me = await api("/me/profile");
  details(me);
  notifications(me);
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  $("profile-details").append(el("p", { class: "error", role: "alert" }, e.message));
});
