// Shared helpers for the Tidings pages, imported by each page's module (`import { el } from
// "./ui.js"`). Every piece of data reaches the page through textContent or attribute setters,
// never through HTML parsing: customer text stays text.

export const $ = (id) => document.getElementById(id);

export async function api(path, opts = {}) {
  const init = {
    credentials: "same-origin",
    ...opts,
    headers: { "X-Requested-With": "tidings", ...(opts.headers || {}) },
  };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  const resp = await fetch(`/api/v1${path}`, init);
  if (resp.status === 401) {
    location.href = "/login";
    throw new Error("signed out");
  }
  let data = null;
  if (resp.status !== 204) {
    try {
      data = await resp.json();
    } catch (_e) {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = new Error(data?.error?.message || resp.statusText);
    err.status = resp.status;
    err.code = data?.error?.code;
    throw err;
  }
  return data;
}

// el("div", {class: "x", dataset: {id: 1}, title: "t"}, "text", child, ...)
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return "now";
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const sameDay = new Date().toDateString() === d.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

// The service-window chip: "closes in 3 h", "closed — template only", or null (no window).
export function windowText(w) {
  if (!w?.applies) return null;
  if (!w.open || !w.closes_at) return { text: "closed — template only", cls: "closed" };
  const left = (new Date(w.closes_at).getTime() - Date.now()) / 1000;
  if (left <= 0) return { text: "closed — template only", cls: "closed" };
  const text =
    left >= 3600 ? `closes in ${Math.floor(left / 3600)} h` : `closes in ${Math.max(1, Math.floor(left / 60))} min`;
  return { text, cls: left < 3 * 3600 ? "closing" : "open" };
}

export const KIND_ICON = {
  whatsapp: "WA",
  api: "API",
  sms: "SMS",
  twilio: "SMS",
  telegram: "TG",
  messenger: "FB",
  instagram: "IG",
  wechat: "WC",
  rbm: "RCS",
  gbm: "GBM",
  email: "@",
  line: "LN",
  viber: "VB",
};
export function channelIcon(kind, title) {
  const short = KIND_ICON[kind] || (kind || "?").slice(0, 3).toUpperCase();
  return el("span", { class: `ch ch-${kind || "none"}`, title: title || kind || "" }, short);
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
