// The composer: reply or private note, the channel picker with why a route is blocked, the SMS
// segment counter, canned replies (/shortcut), and the template picker for a closed window.
import { guarded, reported } from "../forms.js";
import { $, api, channelIcon, debounce, el, icon, windowText } from "../ui.js";
import { announce } from "./live.js";
import { clearUpload, uploadIds } from "./media.js";
import { fillPopup, mentionKey, showMentions } from "./mentions.js";
import { channelOf, S } from "./state.js";
import { putMessage, renderMessages } from "./thread.js";

// The channel picker is one compact <select>: each option says in its own words whether that
// channel can send now (window countdown, billing) or why not (its title has the full reason).
const WHY_SHORT = {
  window_closed: "window closed — template only",
  no_identity: "customer not known here",
  opted_out: "customer opted out",
  channel_inactive: "channel disabled",
};
function routeLabel(r) {
  const w = windowText(r.window);
  if (r.can_send) return r.name + (w ? ` — ${w.text}` : "") + (r.billing ? ` — ${r.billing}` : "");
  const why = WHY_SHORT[r.code] || r.reason || (r.code || "").replaceAll("_", " ");
  return `${r.name} — can't: ${why}`;
}

export function renderRoutes() {
  const sel = $("c-channel");
  const keep = sel.value;
  const routes = S.context.routes;
  sel.replaceChildren(
    ...routes.map((r) =>
      el("option", { value: String(r.channel_id), disabled: !r.can_send, title: r.reason || "" }, routeLabel(r)),
    ),
  );
  const preferred =
    routes.find((r) => String(r.channel_id) === keep && r.can_send) ||
    routes.find((r) => r.last_used && r.can_send) ||
    routes.find((r) => r.can_send);
  // Nothing can send: the picker still shows a channel and, in its option, why not.
  if (preferred) sel.value = String(preferred.channel_id);
  else if (routes.length) sel.selectedIndex = 0;
  updateComposer();
}

function currentRoute() {
  return S.context?.routes.find((r) => String(r.channel_id) === $("c-channel").value && r.can_send);
}

function setCanSend(can) {
  // Nothing can go out: Send and Attach are hidden, not merely greyed (a note still can).
  $("c-send").hidden = !can;
  $("c-send").disabled = !can;
  const attach = $("c-attach");
  if (attach) attach.hidden = !can || S.mode === "note";
  $("c-text").hidden = !can && !$("tpl").hidden;
}

export function updateComposer() {
  const note = S.mode === "note";
  $("composer").classList.toggle("note-mode", note);
  $("mode-reply").setAttribute("aria-selected", String(!note));
  $("mode-note").setAttribute("aria-selected", String(note));
  $("c-channel").disabled = note;
  $("c-channel").closest(".via").hidden = note;
  $("c-text").placeholder = note
    ? "Private note — only your team sees it. Type @ to mention a colleague."
    : "Write a reply…  (Ctrl+Enter sends, / for canned replies)";
  $("c-send").textContent = note ? "Add note" : "Send";
  const why = $("c-why");
  why.replaceChildren();
  $("c-banner").hidden = true;
  $("c-route-note").textContent = "";
  $("c-via-icon").replaceChildren();
  if (note || !S.context) {
    setCanSend(true);
    updateCounter();
    return;
  }
  const routes = S.context.routes;
  const r = currentRoute();
  if (r) {
    const ch = channelOf(r.channel_id);
    if (ch) $("c-via-icon").append(channelIcon(ch.kind, ch.name));
  }
  if (!r) {
    const templated = routes.some((x) => x.code === "window_closed" && x.supports_templates);
    $("c-banner").hidden = false;
    $("c-banner").classList.toggle("template", templated);
    if (templated) {
      why.append(
        icon("clock"),
        el(
          "span",
          { class: "closed" },
          "Window closed — send a template. The customer has not written for more than 24 hours, so only an approved template can reach them.",
        ),
        el(
          "button",
          { type: "button", id: "c-template", class: "primary", onclick: openTemplates },
          icon("file-text"),
          "Choose a template",
        ),
      );
    } else {
      why.append(
        icon("alert-triangle"),
        el(
          "span",
          { class: "closed" },
          routes.length ? "No channel can reach this customer now" : "This inbox has no channel",
        ),
      );
      const first = routes.find((x) => x.reason);
      if (first) why.append(el("span", { class: "blocked" }, `${first.name}: ${first.reason}`));
      why.append(el("span", { class: "hint" }, "A private note still works."));
    }
  }
  setCanSend(Boolean(r));
  updateCounter();
}

// SMS counter from POST /api/v1/sms/preview (encoding, segments, the characters that force
// UCS-2, estimated cost) for SMS routes; a plain length counter near other channels' limits.
export const updateCounter = debounce(async () => {
  const out = $("c-counter");
  const r = currentRoute();
  const text = $("c-text").value;
  out.className = "counter";
  if (S.mode === "note" || !r) {
    out.textContent = "";
    return;
  }
  if (!r.sms) {
    const max = r.text_max_length;
    out.textContent = text.length > max * 0.8 ? `${text.length} / ${max}` : "";
    if (text.length > max) {
      out.classList.add("over");
      out.textContent = `${text.length} / ${max} — too long for ${r.name}`;
    } else if (text.length > max * 0.9) out.classList.add("near");
    return;
  }
  if (!text) {
    out.textContent = "";
    return;
  }
  try {
    const p = await api("/sms/preview", { method: "POST", json: { text, channel_id: r.channel_id } });
    const cost = p.estimated_cost ? ` · ~${p.estimated_cost.amount} ${p.estimated_cost.currency}` : "";
    const forced = (p.ucs2_characters || []).length ? ` · UCS-2 because of ${p.ucs2_characters.join(" ")}` : "";
    // Warn before the next segment starts: the last part is nearly full.
    const per = p.encoding === "GSM-7" ? (p.segments > 1 ? 153 : 160) : p.segments > 1 ? 67 : 70;
    const units = (p.parts || []).length ? p.parts[p.parts.length - 1].units : null;
    const left = units === null ? null : per - units;
    const nearly = left !== null && left <= 10 ? ` · ${left} left before segment ${p.segments + 1}` : "";
    out.textContent = `${p.encoding} · ${p.characters} chars · ${p.segments} segment${p.segments === 1 ? "" : "s"}${cost}${forced}${nearly}`;
    if (p.segments > 1) out.classList.add("over");
    else if (nearly) out.classList.add("near");
  } catch (_e) {
    out.textContent = `${text.length} chars`;
  }
}, 150);

// ---- template picker (when the window is closed) ---------------------------------------
export async function openTemplates() {
  const id = S.current;
  const list = await api(`/ui/conversations/${id}/templates`);
  if (S.current !== id) return;
  S.templates = list;
  const sel = $("tpl-select");
  sel.replaceChildren(
    ...list.map((t) => el("option", { value: String(t.id) }, `${t.name} (${t.language}, ${t.category.toLowerCase()})`)),
  );
  $("tpl").hidden = false;
  $("c-text").hidden = true;
  $("c-banner").hidden = true;
  $("tpl-error").textContent = list.length ? "" : "No approved templates for this inbox's channels yet.";
  drawTemplate();
}

export function closeTemplates() {
  $("tpl").hidden = true;
  $("c-text").hidden = false;
  if (S.context) updateComposer();
}

export function drawTemplate() {
  const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
  const box = $("tpl-params");
  box.replaceChildren();
  if (!t) {
    $("tpl-preview").textContent = "";
    return;
  }
  // Each parameter is named after its placeholder ({{1}} or {{first_name}}) with the words
  // around it, so the agent knows what goes where.
  const names = [...new Set([...t.body.matchAll(/\{\{\s*([\w.]+)\s*\}\}/g)].map((m) => m[1]))];
  while (names.length < t.parameters) names.push(String(names.length + 1));
  for (const name of names.slice(0, Math.max(t.parameters, names.length))) {
    const at = t.body.search(new RegExp(`\\{\\{\\s*${name.replace(".", "\\.")}\\s*\\}\\}`));
    const before = at >= 0 ? t.body.slice(Math.max(0, at - 24), at) : "";
    const around = before
      .slice(before.lastIndexOf("}}") + 1)
      .replace(/^\}/, "")
      .trim();
    const label = /^\d+$/.test(name) ? `Parameter ${name}` : name.replaceAll("_", " ");
    box.append(
      el(
        "label",
        { class: "tpl-param-label" },
        el("span", null, label, around ? el("small", { class: "muted" }, ` after “…${around}”`) : null),
        el("input", {
          class: "tpl-param",
          placeholder: `{{${name}}}`,
          "aria-label": label,
          dataset: { name },
          oninput: previewTemplate,
        }),
      ),
    );
  }
  previewTemplate();
}

function previewTemplate() {
  const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
  if (!t) return;
  const vals = new Map([...document.querySelectorAll("#tpl-params input")].map((i) => [i.dataset.name, i.value]));
  $("tpl-preview").textContent = t.body.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (m, n) => vals.get(n) || m);
}

export async function sendTemplate() {
  const params = [...document.querySelectorAll("#tpl-params input")].map((i) => i.value);
  await reported($("tpl-error"), async () => {
    const m = await api(`/ui/conversations/${S.current}/templates`, {
      method: "POST",
      json: { template_id: Number($("tpl-select").value), params },
    });
    putMessage(m);
    renderMessages();
    closeTemplates();
  });
}

// ---- composer ----------------------------------------------------------------------------
export function setMode(mode) {
  S.mode = mode;
  updateComposer();
  $("c-text").focus();
}

let cannedActive = 0;
let cannedHits = [];
export function showCanned() {
  const box = $("canned");
  const text = $("c-text").value;
  const m = /^\/([\w-]*)$/.exec(text);
  if (!m) {
    if (box.dataset.mode !== "mention") box.hidden = true;
    return;
  }
  const hits = S.boot.canned_replies.filter((r) => r.short_code.startsWith(m[1].toLowerCase()));
  if (hits.map((r) => r.id).join() !== cannedHits.map((r) => r.id).join()) cannedActive = 0;
  cannedHits = hits;
  fillPopup("canned", hits, cannedActive, useCanned, (r) => [
    el("strong", null, `/${r.short_code}`),
    " ",
    el("span", { class: "muted" }, r.content.slice(0, 80)),
  ]);
}

export function useCanned(r) {
  $("c-text").value = r.content;
  $("canned").hidden = true;
  cannedActive = 0;
  $("c-text").focus();
  updateCounter();
}

export async function submit() {
  const text = $("c-text").value.trim();
  const files = S.mode !== "note" ? uploadIds() : [];
  if ((!text && !files.length) || !S.current) return;
  const id = S.current;
  await guarded($("c-error"), async () => {
    if (S.mode === "note") {
      await api(`/ui/conversations/${id}/notes`, { method: "POST", json: { text } });
    } else {
      if (S.othersRepliedSince && $("c-warning").hidden) {
        $("c-warning").hidden = false;
        $("c-warning").textContent =
          `${S.othersRepliedSince} replied while you were writing. Read it, then press Send again to send anyway.`;
        return;
      }
      const r = currentRoute();
      const m = await api(`/conversations/${id}/messages`, {
        method: "POST",
        json: { text: text || null, channel_id: r ? r.channel_id : null, attachment_ids: files },
      });
      if (S.current === id) putMessage(m);
      renderMessages();
      if (files.length) clearUpload();
    }
    $("c-text").value = "";
    $("c-warning").hidden = true;
    S.typingSince = null;
    S.othersRepliedSince = null;
    updateCounter();
    announce(id, "viewing");
  });
}

export function wireComposer() {
  $("mode-reply").addEventListener("click", () => setMode("reply"));
  $("mode-note").addEventListener("click", () => setMode("note"));
  $("c-channel").addEventListener("change", updateComposer);
  $("tpl-select").addEventListener("change", drawTemplate);
  $("tpl-cancel").addEventListener("click", closeTemplates);
  $("tpl-send").addEventListener("click", sendTemplate);
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit();
  });
  $("c-text").addEventListener("input", () => {
    if (!showMentions()) showCanned();
    updateCounter();
    if (S.current && $("c-text").value) {
      if (!S.typingSince) S.typingSince = Date.now();
      if (S.mode === "reply") announce(S.current, "replying", true);
    }
  });
  $("c-text").addEventListener("keydown", (ev) => {
    if (mentionKey(ev)) {
      ev.preventDefault();
      ev.stopPropagation();
      return;
    }
    const box = $("canned");
    if (!box.hidden && box.dataset.mode === "canned" && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      const n = cannedHits.length;
      cannedActive = ev.key === "ArrowDown" ? (cannedActive + 1) % n : (cannedActive - 1 + n) % n;
      showCanned();
      box.querySelector("li.active")?.scrollIntoView({ block: "nearest" });
      return;
    }
    if (!box.hidden && (ev.key === "Enter" || ev.key === "Tab")) {
      const first = box.querySelector("li.active") || box.querySelector("li");
      const r = first && S.boot.canned_replies.find((x) => String(x.id) === first.dataset.id);
      if (r) {
        ev.preventDefault();
        useCanned(r);
        return;
      }
    }
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      submit();
    }
  });
}
