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
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    setOnline(false);
    throw e;
  }
  if (resp.status >= 502 && resp.status <= 504) setOnline(false);
  else if (offlineBanner && !offlineBanner.hidden) setOnline(true);
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

// One term of a <dl class="facts">: [<dt>term</dt>, <dd ddAttrs>value</dd>]; spread it in.
export const fact = (term, value, ddAttrs) => [el("dt", null, term), el("dd", ddAttrs, value)];

// A page's (or settings section's) title and the muted line that says what it is for.
export const pageHead = (title, intro) => [el("h1", null, title), el("p", { class: "muted" }, intro)];

// A <ul> of `items` (nodes), or a muted line saying `none` when there are none.
export const listOr = (attrs, items, none) =>
  items.length ? el("ul", attrs, ...items) : el("p", { class: "muted" }, none);

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

// ---- icons and channel kinds ---------------------------------------------------------------
// Icons are <symbol>s in /static/icons.svg, built from the pinned lucide-static package by
// scripts/icons.py; a name not in the sprite shows nothing (tests/test_icons.py checks them).
const SVG = "http://www.w3.org/2000/svg";
export function icon(name, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", `icon icon-${name}`);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `/static/icons.svg#${name}`);
  svg.append(use);
  return svg;
}

// What every channel kind can do, from the adapter registry (GET /channel-kinds, also in the
// inbox bootstrap as `kinds`): the browser keeps no list of kinds of its own.
let kindsPromise = null;
const kindMap = new Map();
export function setKinds(list) {
  for (const k of list || []) kindMap.set(k.kind, k);
  kindsPromise = kindsPromise || Promise.resolve(kindMap);
}
export function kinds() {
  if (!kindsPromise) {
    kindsPromise = api("/channel-kinds")
      .then((list) => {
        setKinds(list);
        return kindMap;
      })
      .catch(() => kindMap);
  }
  return kindsPromise;
}
export const kindOf = (kind) => kindMap.get(kind) || null;

function paintKind(node, kind, title) {
  const k = kindOf(kind);
  node.replaceChildren(icon(k ? k.icon : "message-circle"));
  if (k) node.style.backgroundColor = k.color;
  node.title = title || k?.label || kind || "";
  node.setAttribute("aria-label", node.title);
}
export function channelIcon(kind, title) {
  const node = el("span", { class: `ch ch-${kind || "none"}`, dataset: { kind: kind || "" }, role: "img" });
  paintKind(node, kind, title);
  if (!kindOf(kind)) kinds().then(() => paintKind(node, kind, title));
  return node;
}

// A person's picture where the channel gave one (served from this origin), else their initials
// on a colour derived from the name.
export function initials(name) {
  const parts = String(name || "?")
    .replace(/[^\p{L}\p{N} ]/gu, " ")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if (!parts.length) return "?";
  const first = [...parts[0]][0] || "";
  const last = parts.length > 1 ? [...parts[parts.length - 1]][0] || "" : "";
  return (first + last).toUpperCase();
}
export function avatar(name, pictureUrl, size = "") {
  const node = el("span", { class: `avatar ${size}`, "aria-hidden": "true" });
  let h = 0;
  for (const ch of String(name || "")) h = (h * 31 + ch.codePointAt(0)) % 360;
  node.style.backgroundColor = `hsl(${h} 45% 42%)`;
  node.textContent = initials(name);
  // Only pictures served by Tidings itself: the page may load images from its own origin only.
  if (pictureUrl?.startsWith("/") && !pictureUrl.startsWith("//")) {
    const img = el("img", { src: pictureUrl, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
    img.addEventListener("load", () => node.replaceChildren(img));
  }
  return node;
}

// ---- confirmations -------------------------------------------------------------------------
// confirmAction({title, consequences: [..], confirm: "Delete"}) resolves true when the person
// confirms; destructive buttons ask first and say what will happen.
export function confirmAction({ title, consequences = [], confirm = "Delete", danger = true }) {
  return new Promise((resolve) => {
    const dlg = el(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      el("h2", { id: "confirm-title" }, title),
      consequences.length ? el("ul", { class: "consequences" }, ...consequences.map((c) => el("li", null, c))) : null,
    );
    const ok = el("button", { type: "button", class: danger ? "danger" : "primary", id: "confirm-ok" }, confirm);
    const cancel = el("button", { type: "button", id: "confirm-cancel" }, "Go back");
    const done = settle(dlg, resolve, false);
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    dlg.append(el("div", { class: "confirm-foot" }, cancel, ok));
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// For a dialog made for one answer: done(v) closes and removes `dlg` and resolves `v`; Escape
// is done(dismissed).
function settle(dlg, resolve, dismissed) {
  const done = (v) => {
    dlg.close();
    dlg.remove();
    resolve(v);
  };
  dlg.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    done(dismissed);
  });
  return done;
}

// askText({title, label, confirm}) resolves the trimmed text, or null when dismissed.
export function askText({ title, label, confirm = "Save", placeholder = "" }) {
  return new Promise((resolve) => {
    const input = el("input", { type: "text", id: "ask-input", maxlength: "80", placeholder, "aria-label": label });
    const err = el("p", { class: "error", role: "alert" });
    const dlg = el(
      "dialog",
      { class: "confirm" },
      el("h2", null, title),
      el("label", { class: "ask" }, label, input),
      err,
    );
    const done = settle(dlg, resolve, null);
    const ok = el("button", { type: "submit", class: "primary", id: "ask-ok" }, confirm);
    const form = el(
      "form",
      { class: "confirm-foot" },
      el("button", { type: "button", id: "ask-cancel", onclick: () => done(null) }, "Go back"),
      ok,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!input.value.trim()) {
        err.textContent = "Give it a name.";
        return;
      }
      done(input.value.trim());
    });
    dlg.append(form);
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}

// ---- connectivity --------------------------------------------------------------------------
// One banner for every page: shown while the server cannot be reached (a request failed at the
// network level, or the browser is offline), gone once a request gets through again.
let offlineBanner = null;
export function setOnline(online, text) {
  if (!offlineBanner) {
    offlineBanner = el("div", { id: "offline-banner", class: "offline-banner", role: "status", "aria-live": "polite" });
    offlineBanner.hidden = true;
    document.body.prepend(offlineBanner);
  }
  offlineBanner.replaceChildren(
    icon("wifi-off"),
    " ",
    text || "Cannot reach Tidings — reconnecting… Changes you make now may not be saved.",
  );
  offlineBanner.hidden = online;
  document.body.classList.toggle("is-offline", !online);
}
window.addEventListener("offline", () => setOnline(false, "You are offline — reconnecting when the network is back."));
window.addEventListener("online", () => setOnline(true));

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// ---- navigation on narrow screens ----------------------------------------------------------
// The top bar's links fold into a menu button below 760 px wide (tidings.css).
function wireNav() {
  const toggle = document.getElementById("nav-toggle");
  const nav = document.getElementById("top-nav");
  if (!toggle || !nav) return;
  const set = (open) => {
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", (ev) => {
    ev.stopPropagation();
    set(!nav.classList.contains("open"));
  });
  document.addEventListener("click", (ev) => {
    if (nav.classList.contains("open") && !nav.contains(ev.target)) set(false);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && nav.classList.contains("open")) {
      set(false);
      toggle.focus();
    }
  });
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireNav);
else wireNav();
