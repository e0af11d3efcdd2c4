// Minimal inbox: conversation list, thread, reply, live updates over SSE.
// All customer-supplied text is inserted with textContent, never as HTML.
"use strict";
const api = (path, opts = {}) =>
  fetch("/api/v1" + path, {
    ...opts,
    headers: { "Content-Type": "application/json", "X-Requested-With": "tidings", ...(opts.headers || {}) },
  });
let current = null;
const convs = new Map();

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function renderList() {
  const list = document.getElementById("list");
  list.replaceChildren();
  const sorted = [...convs.values()].sort((a, b) => (b.last_activity_at || "").localeCompare(a.last_activity_at || ""));
  for (const c of sorted) {
    const row = el("div", "conv" + (c.id === current ? " active" : ""));
    row.dataset.id = c.id;
    const title = el("div", null, "#" + c.id + " · " + c.status);
    if (c.unread_count) title.appendChild(el("span", "unread", String(c.unread_count)));
    row.append(title, el("div", "preview", c.last_message_preview || ""));
    row.addEventListener("click", () => openConversation(c.id));
    list.appendChild(row);
  }
}

function renderMessage(m) {
  const div = el("div", "msg " + m.direction + (m.status === "failed" ? " failed" : ""));
  div.id = "m" + m.id;
  div.appendChild(el("div", null, m.body ?? "[" + m.kind + "]"));
  let meta = m.status;
  if (m.error_reason) meta += " — " + m.error_reason;
  div.appendChild(el("div", "meta", meta));
  return div;
}

async function loadList() {
  const resp = await api("/conversations?limit=100");
  if (!resp.ok) return;
  for (const c of (await resp.json()).data) convs.set(c.id, c);
  renderList();
}

async function openConversation(id) {
  current = id;
  renderList();
  const thread = document.getElementById("thread");
  thread.replaceChildren();
  const box = el("div");
  box.id = "messages";
  const form = el("form");
  form.id = "reply";
  const input = el("textarea");
  input.placeholder = "Reply…";
  const send = el("button", null, "Send");
  const refusal = el("div", "refusal");
  form.append(input, send);
  thread.append(box, refusal, form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const resp = await api("/conversations/" + id + "/messages", { method: "POST", body: JSON.stringify({ text }) });
    if (resp.ok) { input.value = ""; refusal.textContent = ""; }
    else refusal.textContent = (await resp.json()).error.message;
  });
  const resp = await api("/conversations/" + id + "/messages");
  if (!resp.ok) return;
  for (const m of (await resp.json()).data) box.appendChild(renderMessage(m));
  box.scrollTop = box.scrollHeight;
}

function onMessage(m) {
  if (m.conversation_id !== current) return;
  const box = document.getElementById("messages");
  const existing = document.getElementById("m" + m.id);
  const node = renderMessage(m);
  if (existing) existing.replaceWith(node);
  else { box.appendChild(node); box.scrollTop = box.scrollHeight; }
}

const stream = new EventSource("/api/v1/events");
for (const type of ["conversation.created", "conversation.updated"]) {
  stream.addEventListener(type, (ev) => { const c = JSON.parse(ev.data); convs.set(c.id, c); renderList(); });
}
for (const type of ["message.created", "message.updated"]) {
  stream.addEventListener(type, (ev) => onMessage(JSON.parse(ev.data)));
}
loadList();
