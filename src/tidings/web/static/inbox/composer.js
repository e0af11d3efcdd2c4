// The composer: reply or private note, the channel picker with why a route is blocked, the SMS
// segment counter, canned replies (/shortcut), and the template picker for a closed window.
import { $, api, debounce, el, windowText } from "../ui.js";
import { announce } from "./live.js";
import { clearUpload, uploadIds } from "./media.js";
import { S } from "./state.js";
import { putMessage, renderMessages } from "./thread.js";

function routeLabel(r) {
  const w = windowText(r.window);
  const billing = r.can_send && r.billing ? ` — ${r.billing}` : "";
  return r.name + (r.can_send ? (w ? ` — ${w.text}` : "") : ` — can't: ${(r.code || "").replace("_", " ")}`) + billing;
}

export function renderRoutes() {
  const sel = $("c-channel");
  const keep = sel.value;
  const routes = S.context.routes;
  sel.replaceChildren(
    ...routes.map((r) => el("option", { value: String(r.channel_id), disabled: !r.can_send }, routeLabel(r))),
  );
  const preferred =
    routes.find((r) => String(r.channel_id) === keep && r.can_send) ||
    routes.find((r) => r.last_used && r.can_send) ||
    routes.find((r) => r.can_send);
  if (preferred) sel.value = String(preferred.channel_id);
  updateComposer();
}

function currentRoute() {
  return S.context?.routes.find((r) => String(r.channel_id) === $("c-channel").value);
}

export function updateComposer() {
  const note = S.mode === "note";
  $("composer").classList.toggle("note-mode", note);
  $("mode-reply").setAttribute("aria-selected", String(!note));
  $("mode-note").setAttribute("aria-selected", String(note));
  $("c-channel").disabled = note;
  $("c-text").placeholder = note
    ? "Private note — only your team sees it. @name mentions a colleague."
    : "Write a reply…  (Ctrl+Enter sends, / for canned replies)";
  $("c-send").textContent = note ? "Add note" : "Send";
  const why = $("c-why");
  why.replaceChildren();
  if (note || !S.context) {
    $("c-send").disabled = false;
    updateCounter();
    return;
  }
  const routes = S.context.routes;
  const r = currentRoute();
  const blocked = routes.filter((x) => !x.can_send);
  if (!r) {
    why.append(
      el(
        "span",
        { class: "closed" },
        routes.length ? "No channel can reach this customer now" : "This inbox has no channel",
      ),
    );
    if (routes.some((x) => x.code === "window_closed" && x.supports_templates)) {
      why.append(
        el(
          "button",
          { type: "button", id: "c-template", class: "link", onclick: openTemplates },
          "closed — template only: choose a template…",
        ),
      );
    }
  }
  for (const b of blocked) why.append(el("span", { class: "blocked", title: b.reason }, `${b.name}: ${b.reason}`));
  $("c-send").disabled = !r;
  updateCounter();
}

// SMS counter from POST /api/v1/sms/preview (encoding, segments, the characters that force
// UCS-2, estimated cost) for SMS routes; a plain length counter near other channels' limits.
export const updateCounter = debounce(async () => {
  const out = $("c-counter");
  const r = currentRoute();
  const text = $("c-text").value;
  if (S.mode === "note" || !r) {
    out.textContent = "";
    return;
  }
  if (!r.sms) {
    out.textContent = text.length > r.text_max_length * 0.8 ? `${text.length} / ${r.text_max_length}` : "";
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
    out.textContent = `${p.encoding} · ${p.characters} chars · ${p.segments} segment${p.segments === 1 ? "" : "s"}${cost}${forced}`;
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
  $("tpl-error").textContent = list.length ? "" : "No approved templates for this inbox's channels yet.";
  drawTemplate();
}

export function closeTemplates() {
  $("tpl").hidden = true;
  $("c-text").hidden = false;
}

export function drawTemplate() {
  const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
  const box = $("tpl-params");
  box.replaceChildren();
  if (!t) {
    $("tpl-preview").textContent = "";
    return;
  }
  for (let i = 1; i <= t.parameters; i++) {
    box.append(
      el("input", {
        class: "tpl-param",
        placeholder: `{{${i}}}`,
        "aria-label": `Parameter ${i}`,
        oninput: previewTemplate,
      }),
    );
  }
  previewTemplate();
}

function previewTemplate() {
  const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
  if (!t) return;
  const vals = [...document.querySelectorAll("#tpl-params input")].map((i) => i.value);
  $("tpl-preview").textContent = t.body.replace(/\{\{\s*(\d+)\s*\}\}/g, (_m, n) => vals[Number(n) - 1] || `{{${n}}}`);
}

export async function sendTemplate() {
  const params = [...document.querySelectorAll("#tpl-params input")].map((i) => i.value);
  try {
    const m = await api(`/ui/conversations/${S.current}/templates`, {
      method: "POST",
      json: { template_id: Number($("tpl-select").value), params },
    });
    putMessage(m);
    renderMessages();
    closeTemplates();
  } catch (e) {
    $("tpl-error").textContent = e.message;
  }
}

// ---- composer ----------------------------------------------------------------------------
export function setMode(mode) {
  S.mode = mode;
  updateComposer();
  $("c-text").focus();
}

export function showCanned() {
  const box = $("canned");
  const text = $("c-text").value;
  const m = /^\/([\w-]*)$/.exec(text);
  if (!m) {
    box.hidden = true;
    return;
  }
  const hits = S.boot.canned_replies.filter((r) => r.short_code.startsWith(m[1].toLowerCase()));
  box.replaceChildren(
    ...hits.map((r, i) =>
      el(
        "li",
        {
          class: i === 0 ? "active" : "",
          dataset: { id: r.id },
          onmousedown: (ev) => {
            ev.preventDefault();
            useCanned(r);
          },
        },
        el("strong", null, `/${r.short_code}`),
        " ",
        el("span", { class: "muted" }, r.content.slice(0, 80)),
      ),
    ),
  );
  box.hidden = !hits.length;
}

export function useCanned(r) {
  $("c-text").value = r.content;
  $("canned").hidden = true;
  $("c-text").focus();
  updateCounter();
}

export async function submit() {
  const text = $("c-text").value.trim();
  const files = S.mode !== "note" ? uploadIds() : [];
  if ((!text && !files.length) || !S.current) return;
  $("c-error").textContent = "";
  const id = S.current;
  try {
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
  } catch (e) {
    $("c-error").textContent = e.message;
  }
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
    showCanned();
    updateCounter();
    if (S.current && $("c-text").value) {
      if (!S.typingSince) S.typingSince = Date.now();
      if (S.mode === "reply") announce(S.current, "replying", true);
    }
  });
  $("c-text").addEventListener("keydown", (ev) => {
    const box = $("canned");
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
