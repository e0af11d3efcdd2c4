// Refusals shown at the field they are about. The API words every validation error as
// "<field>: <what is wrong>" (e.g. "phone: not a valid phone number", "config.secret: ...");
// an input carrying data-field="<field>" gets the sentence under it, the rest goes to `box`.
import { el } from "./ui.js";

export function clearFieldErrors(form) {
  for (const node of form.querySelectorAll(".field-error")) node.remove();
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// Puts `err`'s message at its field inside `form`; returns true when a field took it.
export function showFieldError(form, err) {
  const m = /^([\w.]+): (.*)$/s.exec(err?.message || "");
  if (!m) return false;
  const [, name, text] = m;
  const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!input) return false;
  input.setAttribute("aria-invalid", "true");
  const note = el("small", { class: "field-error", role: "alert" }, text);
  input.insertAdjacentElement("afterend", note);
  input.focus();
  return true;
}

// Runs `fn` for `form`: old field errors go; a refusal lands at its field, else in `box`.
export async function guardedForm(form, box, fn) {
  clearFieldErrors(form);
  box.textContent = "";
  try {
    await fn();
  } catch (e) {
    if (!showFieldError(form, e)) box.textContent = e.message;
  }
}

// "phone_number_id" → "Phone number ID": a label people read, when the schema has no title.
const WORDS = { id: "ID", url: "URL", api: "API", sms: "SMS", ttl: "TTL", smpp: "SMPP", oa: "OA" };
// Pydantic titles every field ("Phone Number Id"); only a title someone wrote is kept.
const autoTitle = (name) =>
  name
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(" ");
export function humanLabel(name, prop) {
  if (prop?.title && prop.title !== autoTitle(name)) return prop.title;
  const words = name.split("_").map((w) => WORDS[w] || w);
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// Submitting `form` runs `fn` through guardedForm() instead of loading a page.
export function onSubmitForm(form, box, fn) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guardedForm(form, box, fn);
  });
}
