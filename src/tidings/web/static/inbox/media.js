// Attachments in the inbox: previews in the thread (served only by the agent-only
// /api/v1/attachments/{id}), and the composer's file button with the channel's limits checked
// before upload (the server checks again on upload and on send). File names and captions are
// text nodes, never markup.
import { $, api, el } from "../ui.js";

const SAFE_URL = /^\/api\/v1\/attachments\/\d+$/;
const PROBLEMS = {
  too_large: "Attachment too large",
  not_allowed: "Attachment type not allowed",
  failed: "Attachment could not be downloaded",
};
const state = { upload: null, limits: new Map(), busy: false };

function size(n) {
  if (n == null) return "";
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} bytes`;
}

// One attachment of message `m`, as a node.
export function attachment(a, m) {
  const name = a.filename || a.kind;
  const caption = a.caption ? el("figcaption", null, a.caption) : null;
  // Under a preview the caption is left out when it is the message text already (WhatsApp).
  const previewCaption = a.caption && a.caption !== m?.body ? caption : null;
  if (a.state === "pending") {
    return el("div", { class: "att att-pending", dataset: { state: "pending" } }, `Downloading ${a.kind}…`);
  }
  if (PROBLEMS[a.state]) {
    return el(
      "div",
      { class: "att att-problem", dataset: { state: a.state }, role: "note" },
      el("strong", null, PROBLEMS[a.state]),
      a.filename ? el("span", { class: "name" }, ` ${a.filename}`) : null,
      a.error ? ` — ${a.error}` : "",
      caption,
    );
  }
  const url = a.state === "stored" && SAFE_URL.test(a.download_url || "") ? a.download_url : null;
  if (!url) {
    // Not stored by Tidings (older messages, channels that keep a provider reference only).
    return el(
      "div",
      { class: "att" },
      el("span", { class: "att-kind" }, a.kind),
      " ",
      a.filename || a.mime_type || "",
      a.caption ? ` — ${a.caption}` : "",
    );
  }
  const mime = a.mime_type || "";
  const figure = (kind, ...body) =>
    el("figure", { class: `att att-${kind}`, dataset: { state: "stored" } }, ...body, previewCaption);
  if (/^image\/(jpeg|png|gif|webp)$/.test(mime)) {
    return figure(
      "image",
      el(
        "a",
        { href: url, target: "_blank", rel: "noopener noreferrer", title: name },
        el("img", { src: url, alt: a.caption || name, loading: "lazy" }),
      ),
    );
  }
  if (mime.startsWith("audio/")) return figure("audio", el("audio", { src: url, controls: true, preload: "none" }));
  if (mime.startsWith("video/")) return figure("video", el("video", { src: url, controls: true, preload: "metadata" }));
  return figure(
    "file",
    el("span", { class: "att-kind" }, kindLabel(mime, a.kind)),
    " ",
    el("a", { href: url, download: name, rel: "noopener" }, name),
    el("span", { class: "muted" }, ` ${size(a.size)}`),
  );
}

function kindLabel(mime, kind) {
  const sub = (mime.split("/")[1] || "").split(/[.+-]/).pop();
  return sub && sub.length <= 5 ? sub : kind;
}

// ---- composer ---------------------------------------------------------------------------
const conversationId = () => {
  const m = /^#c\/(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
};

async function limitsFor(channelId) {
  if (!state.limits.has(channelId)) state.limits.set(channelId, await api(`/channels/${channelId}/media_limits`));
  return state.limits.get(channelId);
}

function maxFor(types, mime) {
  if (mime in types) return types[mime];
  for (const [k, v] of Object.entries(types)) if (k.endsWith("/") && mime.startsWith(k)) return v;
  return null;
}

// Why `file` cannot go over the channel, or null. Same rules as the server's.
function check(limits, file) {
  if (limits.refusal) return limits.refusal;
  const mime = (file.type || "").toLowerCase();
  if (!mime) return "The file type is unknown.";
  const max = maxFor(limits.types, mime);
  if (max == null) return `This channel does not allow ${mime} files.`;
  if (file.size > max) return `The file is ${size(file.size)}; this channel allows ${size(max)} for ${mime}.`;
  if (!file.size) return "The file is empty.";
  return null;
}

function render() {
  const chip = $("c-file-chip");
  if (!chip) return;
  if (!state.upload) {
    chip.hidden = true;
    chip.replaceChildren();
    return;
  }
  chip.hidden = false;
  chip.replaceChildren(
    el("span", { class: "att-kind" }, state.upload.busy ? "uploading" : "attached"),
    " ",
    el("span", { class: "name" }, state.upload.filename || "file"),
    " ",
    el("span", { class: "muted" }, size(state.upload.size)),
    " ",
    el("button", { type: "button", class: "link", title: "Remove the file", onclick: clearUpload }, "×"),
  );
}

async function pick(file) {
  const err = $("c-error");
  err.textContent = "";
  const conv = conversationId();
  const channelId = Number($("c-channel")?.value) || null;
  if (!conv || !file) return;
  try {
    if (channelId) {
      const why = check(await limitsFor(channelId), file);
      if (why) {
        err.textContent = why;
        return;
      }
    }
    state.upload = { filename: file.name, size: file.size, busy: true };
    render();
    const form = new FormData();
    form.append("file", file, file.name);
    if (channelId) form.append("channel_id", String(channelId));
    const data = await api(`/conversations/${conv}/attachments`, { method: "POST", body: form });
    state.upload = { id: data.id, filename: data.filename, size: data.size, conversation: conv, busy: false };
  } catch (e) {
    state.upload = null;
    err.textContent = e.message;
  }
  render();
}

export function clearUpload() {
  state.upload = null;
  const input = $("c-file");
  if (input) input.value = "";
  render();
}

// The upload ids a reply in the open conversation takes (at most one).
export function uploadIds() {
  const u = state.upload;
  return u && !u.busy && u.id && u.conversation === conversationId() ? [u.id] : [];
}

function mount() {
  const foot = document.querySelector("#composer > .composer-foot");
  if (!foot || $("c-file")) return;
  const input = el("input", {
    type: "file",
    id: "c-file",
    hidden: true,
    "aria-label": "Attach a file",
    onchange: () => pick(input.files?.[0]),
  });
  const button = el(
    "button",
    { type: "button", id: "c-attach", title: "Attach a file", onclick: () => input.click() },
    "Attach file",
  );
  const chip = el("span", { id: "c-file-chip", class: "file-chip", hidden: true });
  foot.prepend(input, button, chip);
  window.addEventListener("hashchange", clearUpload);
  const channel = $("c-channel");
  if (channel) channel.addEventListener("change", clearUpload);
}

// Module scripts run once the document is parsed: the composer is there.
mount();
