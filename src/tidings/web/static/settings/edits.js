// Settings edits that used to be add/delete only: canned replies and labels
// edited in place (labels show their colour), outgoing webhooks paused, resumed or deleted,
// and the IANA time-zone list for business hours.
import { guarded } from "../forms.js";
import { api, el } from "../ui.js";

// An "Edit" button that turns `row` into a small form; `fields` are [name, input] pairs,
// `save(values)` stores them, and `done()` redraws the section.
function inlineEdit(row, fields, save, done, err) {
  return el(
    "button",
    {
      type: "button",
      class: "row-edit",
      onclick: () => {
        const cells = fields.map(([, input]) => el("td", null, input));
        const saveBtn = el(
          "button",
          {
            type: "button",
            class: "primary row-save",
            onclick: () =>
              guarded(err, async () => {
                await save(Object.fromEntries(fields.map(([name, input]) => [name, input.value])));
                await done();
              }),
          },
          "Save",
        );
        row.replaceChildren(
          ...cells,
          el("td", null, saveBtn, " ", el("button", { type: "button", onclick: done }, "Cancel")),
        );
        fields[0][1].focus();
      },
    },
    "Edit",
  );
}

export function editCanned(row, r, done, err) {
  const content = el("textarea", { class: "edit-content", rows: "3", "aria-label": "Reply" });
  content.value = r.content;
  return inlineEdit(
    row,
    [
      ["short_code", el("input", { class: "edit-code", value: r.short_code, "aria-label": "Shortcut" })],
      ["content", content],
    ],
    (v) => api(`/admin/canned_replies/${r.id}`, { method: "PUT", json: v }),
    done,
    err,
  );
}

export function labelSwatch(color) {
  const s = el("span", { class: "swatch", "aria-hidden": "true" });
  s.style.setProperty("--swatch", color);
  return s;
}

export function editLabel(row, l, done, err) {
  return inlineEdit(
    row,
    [
      ["name", el("input", { class: "edit-name", value: l.name, "aria-label": "Label name" })],
      ["color", el("input", { class: "edit-color", type: "color", value: l.color, "aria-label": "Colour" })],
    ],
    (v) => api(`/admin/labels/${l.id}`, { method: "PUT", json: v }),
    done,
    err,
  );
}

// Pause/Resume and Delete for one subscription (delete says what goes before it goes).
export function webhookActions(s, done, err) {
  const toggle = el(
    "button",
    {
      type: "button",
      class: "wh-toggle",
      onclick: () =>
        guarded(err, async () => {
          await api(`/webhook_subscriptions/${s.id}`, { method: "PATCH", json: { active: !s.active } });
          await done();
        }),
    },
    s.active ? "Pause" : "Resume",
  );
  const confirm = el("span", { class: "wh-confirm" });
  const del = el(
    "button",
    {
      type: "button",
      class: "wh-delete danger",
      onclick: () =>
        confirm.replaceChildren(
          el("span", null, " Stops all deliveries to this URL and deletes its delivery log. "),
          el(
            "button",
            {
              type: "button",
              class: "danger wh-delete-confirm",
              onclick: async () => {
                try {
                  await api(`/webhook_subscriptions/${s.id}`, { method: "DELETE" });
                  await done();
                } catch (e) {
                  err.textContent = e.message;
                }
              },
            },
            "Delete subscription",
          ),
          " ",
          el("button", { type: "button", onclick: () => confirm.replaceChildren() }, "Cancel"),
        ),
    },
    "Delete",
  );
  return el("span", { class: "row-actions" }, toggle, del, confirm);
}

// Offers the IANA names as the input's suggestions and refuses anything else.
export async function timeZonePicker(input) {
  const zones = await api("/timezones");
  const list = el("datalist", { id: "tz-list" }, ...zones.map((z) => el("option", { value: z })));
  input.setAttribute("list", "tz-list");
  input.setAttribute("autocomplete", "off");
  input.dataset.field = "timezone";
  const known = new Set(zones);
  input.addEventListener("input", () => {
    input.setCustomValidity(
      input.value && !known.has(input.value) ? "Pick a time zone from the list (e.g. Europe/Paris)." : "",
    );
  });
  input.after(list);
}

// One day of the weekly grid: open or closed, from and to (time pickers), over the day's
// text input, which stays the source of what is saved and takes several intervals
// ("09:00-12:00, 13:00-17:30"); the pickers show and set its first interval.
export function dayRow(input) {
  const open = el("input", { type: "checkbox", class: "day-open", "aria-label": `${input.id} open` });
  const from = el("input", { type: "time", class: "day-from", "aria-label": "Opens at" });
  const to = el("input", { type: "time", class: "day-to", "aria-label": "Closes at" });
  const fromText = () => {
    const first = input.value.split(",")[0]?.trim() || "";
    const [a, b] = first.split("-").map((x) => (x || "").trim());
    open.checked = Boolean(first);
    from.value = a || "";
    to.value = b || "";
    from.disabled = to.disabled = !open.checked;
  };
  const toText = () => {
    const rest = input.value
      .split(",")
      .slice(1)
      .map((x) => x.trim())
      .filter(Boolean);
    input.value = open.checked ? [`${from.value || "09:00"}-${to.value || "17:00"}`, ...rest].join(", ") : "";
    fromText();
  };
  open.addEventListener("change", toText);
  from.addEventListener("change", toText);
  to.addEventListener("change", toText);
  input.addEventListener("input", fromText);
  input.classList.add("day-text");
  fromText();
  return el("div", { class: "day-row" }, el("label", { class: "day-toggle" }, open, " open"), from, "–", to, input);
}
