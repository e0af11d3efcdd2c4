// The agent inbox: list, thread, composer, contact panel; live over SSE; keyboard-driven.
// Customer-supplied text is only ever inserted with textContent (see T.el in ui.js).
"use strict";
(() => {
  const { api, el, ago, clock, windowText, channelIcon, debounce } = T;
  const $ = (id) => document.getElementById(id);

  const S = {
    boot: null,
    view: localStorage.getItem("tidings.view") || "all",
    convs: new Map(),       // id -> enriched conversation
    order: [],              // ids in list order
    cursor: null,
    selected: null,         // id highlighted in the list (j/k)
    current: null,          // id open in the thread
    messages: new Map(),    // id -> message of the open thread
    context: null,
    mode: "reply",
    presence: new Map(),    // conversation id -> Map(agent id -> {name, state, until})
    typingSince: null,      // when this agent started the current draft
    othersRepliedSince: null,
    unread: 0,
    picked: new Set(),      // bulk selection (ids), or...
    pickAll: false,         // ...every conversation matching the filters
  };

  const agentName = (id) => { const a = S.boot && S.boot.agents.find((x) => x.id === id); return a ? a.name : "agent " + id; };
  // Customers are named by the server (`serialize.display_name`: name, phone, handle,
  // "Customer #id"); a bare live event without the field keeps the placeholder meanwhile.
  const shownName = (c) => c.contact_display_name || "Customer #" + c.contact_id;
  const channelOf = (id) => S.boot && S.boot.channels.find((c) => c.id === id);
  const teamName = (id) => { const t = S.boot && S.boot.teams.find((x) => x.id === id); return t ? t.name : "team " + id; };
  const filters = () => ({
    view: S.view, status: $("f-status").value, inbox_id: $("f-inbox").value, channel_id: $("f-channel").value,
    label: $("f-label").value, assignee_id: $("f-assignee").value, sort: $("f-sort").value,
    sla: $("f-sla") ? $("f-sla").value : "", team_id: $("f-team").value,
  });

  // ---- title and live indicator ---------------------------------------------------------
  function setTitle() {
    document.title = (S.unread ? "(" + S.unread + ") " : "") + "Inbox — Tidings";
  }
  const refreshUnread = debounce(async () => {
    try { S.unread = (await api("/ui/conversations?limit=1&status=any")).unread_conversations; setTitle(); } catch (_e) { /* offline */ }
  }, 300);

  // ---- list --------------------------------------------------------------------------------
  function matches(c) {
    const f = filters();
    if (f.view === "mine" && c.assignee_id !== S.boot.me.id) return false;
    if (f.view === "unassigned" && c.assignee_id !== null) return false;
    if (f.status !== "any" && c.status !== f.status) return false;
    if (f.inbox_id && String(c.inbox_id) !== f.inbox_id) return false;
    if (f.channel_id && String(c.last_channel_id) !== f.channel_id) return false;
    if (f.label && !(c.labels || []).includes(f.label)) return false;
    if (f.assignee_id && String(c.assignee_id) !== f.assignee_id) return false;
    if (f.team_id && String(c.team_id) !== f.team_id) return false;
    if (f.sla && c.sla_state !== f.sla) return false;
    return true;
  }

  // An API timestamp as microseconds since the epoch, for ordering by instant. Comparing the
  // ISO strings as text put "12:00:00.5+00:00" before "12:00:00+00:00" (collation ranks "."
  // before "+"), so a same-second auto-reply showed above the customer's message.
  function instant(iso) {
    if (!iso) return 0;
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return 0;
    const frac = /\.(\d+)/.exec(iso);
    return ms * 1000 + (frac ? Number((frac[1] + "000000").slice(3, 6)) : 0);
  }
  const byInstant = (a, b, field) => instant(a[field]) - instant(b[field]) || a.id - b.id;

  function sortOrder() {
    const desc = $("f-sort").value === "activity";
    S.order = [...S.convs.values()].sort((a, b) => {
      const x = byInstant(a, b, "last_activity_at");
      return desc ? -x : x;
    }).map((c) => c.id);
  }

  function row(c) {
    const w = windowText(c.window);
    const li = el("li", {
      class: "conv" + (c.unread_count ? " unread" : "") + (c.id === S.current ? " open" : "") + (c.id === S.selected ? " selected" : ""),
      dataset: { id: c.id }, tabindex: "-1",
      onclick: () => { select(c.id); openConversation(c.id); },
    },
      el("input", { type: "checkbox", class: "pick", "aria-label": "Select", checked: S.pickAll || S.picked.has(c.id),
        onclick: (ev) => { ev.stopPropagation(); togglePick(c.id); } }),
      channelIcon(c.channel_kind, c.channel_name),
      el("div", { class: "conv-main" },
        el("div", { class: "conv-top" },
          el("span", { class: "name" }, shownName(c)),
          c.priority && c.priority !== "none" ? el("span", { class: "prio prio-" + c.priority, title: "priority " + c.priority }, c.priority) : null,
          el("span", { class: "when", title: c.last_activity_at }, ago(c.last_activity_at))),
        el("div", { class: "conv-bottom" },
          el("span", { class: "preview" }, c.last_message_preview || ""),
          c.unread_count ? el("span", { class: "badge", title: c.unread_count + " unread" }, String(c.unread_count)) : null),
        el("div", { class: "conv-tags" },
          w ? el("span", { class: "window " + w.cls }, w.text) : null,
          window.TS ? TS.slaChip(c) : null,
          c.assignee_id ? el("span", { class: "assignee", title: "assigned to " + agentName(c.assignee_id) }, "@" + agentName(c.assignee_id)) : null,
          c.team_id ? el("span", { class: "team", title: "team" }, "⚑ " + teamName(c.team_id)) : null,
          ...(c.labels || []).map((name) => el("span", { class: "label" }, name)),
          c.status !== "open" ? el("span", { class: "status status-" + c.status }, c.status) : null)));
    return li;
  }

  function renderList() {
    sortOrder();
    const list = $("list");
    list.replaceChildren(...S.order.map((id) => row(S.convs.get(id))));
    if (!S.order.length) list.append(el("li", { class: "empty" }, "No conversations here."));
    $("more").hidden = !S.cursor;
    for (const b of document.querySelectorAll(".views button")) b.setAttribute("aria-selected", String(b.dataset.view === S.view));
  }

  // ---- bulk actions -----------------------------------------------------------------------
  function togglePick(id) {
    if (S.pickAll) { S.pickAll = false; S.picked = new Set(S.order); }
    if (S.picked.has(id)) S.picked.delete(id); else S.picked.add(id);
    renderBulk();
    renderList();
  }

  function clearPicks() { S.picked.clear(); S.pickAll = false; renderBulk(); renderList(); }

  function renderBulk() {
    const bar = $("bulk");
    const n = S.pickAll ? null : S.picked.size;
    if (!S.pickAll && !n) { bar.hidden = true; return; }
    bar.hidden = false;
    bar.replaceChildren(
      el("span", { class: "count" }, S.pickAll ? "All matching" : n + " selected"),
      S.pickAll || !S.cursor && n === S.order.length ? null : el("button", { type: "button", class: "link", id: "pick-all", onclick: () => { S.pickAll = true; renderBulk(); renderList(); } }, "Select all matching"),
      el("button", { type: "button", id: "bulk-resolve", onclick: () => bulk({ status: "resolved" }) }, "Resolve"),
      el("button", { type: "button", id: "bulk-assign", onclick: () => picker("Assign selected to", [{ label: "Unassigned", value: null }, ...S.boot.agents.filter((a) => a.active).map((a) => ({ label: a.name, value: a.id }))], (it) => bulk({ assignee_id: it.value })) }, "Assign…"),
      el("button", { type: "button", id: "bulk-team", onclick: () => picker("Team for selected", [{ label: "No team", value: null }, ...S.boot.teams.map((t) => ({ label: t.name, value: t.id }))], (it) => bulk({ team_id: it.value })) }, "Team…"),
      el("button", { type: "button", id: "bulk-label", onclick: () => picker("Add label to selected", S.boot.labels.map((l) => ({ label: l.name, value: l.name })), (it) => bulk({ add_label: it.value }), true) }, "Label…"),
      el("button", { type: "button", class: "link", onclick: clearPicks }, "Clear"));
  }

  async function bulk(change) {
    const f = filters();
    const target = S.pickAll
      ? { matching: { view: f.view, status: f.status, inbox_id: f.inbox_id ? Number(f.inbox_id) : null, channel_id: f.channel_id ? Number(f.channel_id) : null, assignee_id: f.assignee_id ? Number(f.assignee_id) : null, label: f.label || null, team_id: f.team_id ? Number(f.team_id) : null } }
      : { ids: [...S.picked] };
    try {
      const res = await api("/ui/conversations/bulk", { method: "POST", json: { ...target, ...change } });
      S.picked.clear();
      S.pickAll = false;
      $("bulk").hidden = false;
      $("bulk").replaceChildren(el("span", { class: "count", id: "bulk-done" }, "Updated " + res.count + " conversation" + (res.count === 1 ? "" : "s") + "."));
      setTimeout(renderBulk, 3000);
      await loadList();
    } catch (e) { $("bulk").append(el("span", { class: "error" }, " " + e.message)); }
  }

  async function loadList(more = false) {
    const f = filters();
    const q = new URLSearchParams({ limit: "30" });
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    if (more && S.cursor) q.set("cursor", S.cursor);
    const page = await api("/ui/conversations?" + q);
    if (!more) S.convs.clear();
    for (const c of page.data) S.convs.set(c.id, c);
    S.cursor = page.next_cursor;
    S.unread = page.unread_conversations;
    setTitle();
    renderList();
  }

  async function upsertConversation(id) {
    let c;
    try { c = await api("/ui/conversations/" + id); } catch (_e) { return; }
    if (matches(c)) S.convs.set(id, c); else S.convs.delete(id);
    renderList();
    if (id === S.current) renderHead(c);
  }

  function select(id) {
    S.selected = id;
    for (const li of document.querySelectorAll("#list .conv")) li.classList.toggle("selected", Number(li.dataset.id) === id);
    const node = document.querySelector('#list .conv[data-id="' + id + '"]');
    if (node) node.scrollIntoView({ block: "nearest" });
  }

  function move(delta) {
    if (!S.order.length) return;
    const i = S.order.indexOf(S.selected ?? S.current);
    const next = i < 0 ? 0 : Math.min(S.order.length - 1, Math.max(0, i + delta));
    select(S.order[next]);
  }

  // ---- thread ------------------------------------------------------------------------------
  const TICKS = { queued: ["🕓", "queued"], sent: ["✓", "sent"], delivered: ["✓✓", "delivered"], read: ["✓✓", "read"], failed: ["!", "failed"], received: ["", ""] };

  // A shown status never moves backwards (the server's rule, domain/enums.py
  // status_moves_forward): the POST answer "queued" may arrive after the live "sent" event.
  const RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };
  function statusMayReplace(known, next) {
    const [cur, now] = [known.status, next.status];
    if (cur === now || !(cur in RANK || cur === "failed")) return true;
    if (now === "failed") return cur === "queued" || cur === "sent";
    // A retry puts a failed message back in the queue; only a newer record says so.
    if (cur === "failed") return now === "delivered" || now === "read" || (now === "queued" && instant(next.updated_at) > instant(known.updated_at));
    return now in RANK && RANK[now] > RANK[cur];
  }

  // Every message the page learns of (list, POST answers, live events) goes through here.
  function putMessage(m) {
    const known = S.messages.get(m.id);
    if (known) {
      // Status updates carry the message without its attachments: keep the ones shown.
      if (!(m.attachments || []).length && (known.attachments || []).length) m.attachments = known.attachments;
      if (!statusMayReplace(known, m)) {
        m.status = known.status;
        m.error_code = known.error_code;
        m.error_reason = known.error_reason;
      }
    }
    S.messages.set(m.id, m);
  }

  function withMentions(text, mentions) {
    // Split on @words and mark those that named a mentioned agent; all pieces are text nodes.
    const frag = document.createDocumentFragment();
    const names = new Set((mentions || []).map((id) => agentName(id).toLowerCase().replace(/\s+/g, "")));
    const firsts = new Set((mentions || []).map((id) => agentName(id).toLowerCase().split(/\s+/)[0]));
    let last = 0;
    for (const m of text.matchAll(/@([\w][\w.\-]*)/g)) {
      frag.append(text.slice(last, m.index));
      const h = m[1].toLowerCase();
      frag.append(names.has(h) || firsts.has(h) ? el("span", { class: "mention" }, m[0]) : m[0]);
      last = m.index + m[0].length;
    }
    frag.append(text.slice(last));
    return frag;
  }

  function bubble(m) {
    if (m.kind === "system") {
      return el("li", { class: "sys", id: "m" + m.id, dataset: { id: m.id } }, el("span", null, m.body || ""), el("time", { datetime: m.sent_at }, clock(m.sent_at)));
    }
    if (m.kind === "reaction") {
      const target = m.reply_to_id && S.messages.get(m.reply_to_id);
      return el("li", { class: "reaction " + m.direction, id: "m" + m.id, dataset: { id: m.id } },
        el("span", { class: "emoji" }, m.body || "♡"), " reacted",
        target ? el("span", { class: "muted" }, " to “" + (target.body || "").slice(0, 60) + "”") : null);
    }
    const ch = m.channel_id ? channelOf(m.channel_id) : null;
    const isNote = m.kind === "note";
    const cls = "msg " + (isNote ? "note" : m.direction) + (m.status === "failed" ? " failed" : "") + ((m.extra || {}).deleted_at ? " deleted" : "");
    const body = el("div", { class: "body" });
    const lat = Number((m.extra || {}).latitude), lon = Number((m.extra || {}).longitude);
    if (m.kind === "location" && Number.isFinite(lat) && Number.isFinite(lon)) {
      // Only numbers go into the link; a provider-given URL is never used as an href.
      body.append("📍 ", m.body || "Location", el("br"),
        el("a", { href: "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=16/" + lat + "/" + lon, target: "_blank", rel: "noopener noreferrer" }, lat.toFixed(5) + ", " + lon.toFixed(5)));
    } else if (isNote) body.append(withMentions(m.body || "", (m.extra || {}).mentions));
    else if (m.body) body.append(m.body);
    else if (!(m.attachments || []).length) body.append(el("em", { class: "muted" }, "[" + m.kind + "]"));
    const quoted = m.reply_to_id && S.messages.get(m.reply_to_id);
    const atts = (m.attachments || []).map((a) => window.TM ? TM.attachment(a, m) : el("div", { class: "att" }, el("span", { class: "att-kind" }, a.kind), " ", a.filename || a.mime_type || "", a.caption ? " — " + a.caption : ""));
    const meta = el("div", { class: "meta" });
    if (isNote) meta.append(el("span", { class: "note-tag" }, "Private note"), " · ", agentName(m.sender_agent_id));
    else {
      if (ch) meta.append(channelIcon(ch.kind, ch.name), " ");
      if (m.direction === "out" && m.sender_agent_id) meta.append(agentName(m.sender_agent_id), " · ");
    }
    const extra = m.extra || {};
    if (extra.edited_at) {
      const before = (extra.edits || []).map((e) => (e && (e.previous ?? e.text ?? e.body)) || "").filter(Boolean);
      meta.append(el("span", { class: "edited", title: before.length ? "Before: " + before.join(" | ") : "" }, "edited"), " · ");
    }
    if (extra.deleted_at) meta.append(el("span", { class: "deleted-tag" }, "deleted by the sender"), " · ");
    meta.append(el("time", { datetime: m.sent_at, title: m.sent_at }, clock(m.sent_at)));
    if (m.direction === "out" && !isNote) {
      const [sym, label] = TICKS[m.status] || ["", m.status];
      meta.append(" ", el("span", { class: "tick tick-" + m.status, title: label, dataset: { status: m.status } }, sym));
    }
    const li = el("li", { class: cls, id: "m" + m.id, dataset: { id: m.id, status: m.status } },
      quoted ? el("blockquote", null, (quoted.body || "").slice(0, 140)) : null, body, ...atts, meta);
    if (m.status === "failed") {
      li.append(el("div", { class: "fail" },
        el("span", { class: "reason" }, m.error_reason || "Not delivered."),
        el("button", { type: "button", class: "retry", onclick: () => retry(m.id) }, "Retry")));
    }
    return li;
  }

  function renderMessages() {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const sorted = [...S.messages.values()].sort((a, b) => byInstant(a, b, "sent_at"));
    box.replaceChildren(...sorted.map(bubble));
    if (atBottom || box.dataset.fresh) { box.scrollTop = box.scrollHeight; delete box.dataset.fresh; }
  }

  function fillAssignees() {
    const c = S.conv;
    fillSelect("t-assignee", "Unassigned", S.boot.agents.filter((a) => a.active && (!c || canTake(a, c) || a.id === c.assignee_id)).map((a) => [a.id, a.name]));
  }

  function renderHead(c) {
    S.conv = c;
    fillAssignees();
    $("t-name").textContent = shownName(c);
    const inbox = S.boot.inboxes.find((i) => i.id === c.inbox_id);
    $("t-meta").textContent = "#" + c.id + (inbox ? " · " + inbox.name : "") + (c.channel_name ? " · last via " + c.channel_name : "");
    $("t-status").value = c.status;
    $("t-priority").value = c.priority || "none";
    $("t-assignee").value = c.assignee_id === null ? "" : String(c.assignee_id);
    $("t-team").value = c.team_id == null ? "" : String(c.team_id);
    $("t-resolve").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
    $("t-labels").replaceChildren(...(c.labels || []).map((n) => el("span", { class: "label" }, n)),
      el("button", { type: "button", class: "link", onclick: () => pickLabel() }, "+ label"));
  }

  async function openConversation(id) {
    if (S.current && S.current !== id) announce(S.current, "left");
    S.current = id;
    S.selected = id;
    if (location.hash !== "#c/" + id) history.replaceState(null, "", "#c/" + id);
    renderList();
    document.querySelector(".panes").classList.add("thread-open");
    $("thread-empty").hidden = true;
    $("thread").hidden = true;
    $("contact-pane").replaceChildren();
    let c;
    try {
      c = await api("/ui/conversations/" + id);
    } catch (e) {
      if (S.current !== id) return;
      S.current = null;
      $("thread-empty").hidden = false;
      $("thread-empty").textContent = e.status === 404 ? "Conversation not found — it does not exist or is in an inbox you are not a member of." : "Could not open the conversation: " + e.message;
      return;
    }
    const page = await api("/conversations/" + id + "/messages?limit=200");
    if (S.current !== id) return;
    S.messages = new Map(page.data.map((m) => [m.id, m]));
    S.typingSince = null;
    S.othersRepliedSince = null;
    $("c-warning").hidden = true;
    closeTemplates();
    $("thread").hidden = false;
    renderHead(c);
    $("messages").dataset.fresh = "1";
    renderMessages();
    renderPresence();
    await loadContext();
    if (c.unread_count) {
      const row = S.convs.get(id);
      if (row) { row.unread_count = 0; renderList(); }
      api("/ui/conversations/" + id + "/read", { method: "POST" }).catch(() => {});
    }
    announce(id, "viewing");
  }

  // ---- contact panel and channel picker ----------------------------------------------------
  async function loadContext() {
    const id = S.current;
    const ctx = await api("/ui/conversations/" + id + "/context");
    if (S.current !== id) return;
    S.context = ctx;
    renderContact();
    renderRoutes();
  }

  function renderContact() {
    const { contact, consents, previous_conversations: prev } = S.context;
    const pane = $("contact-pane");
    const attrs = Object.entries(contact.attributes || {});
    pane.replaceChildren(
      el("h2", { class: "contact-name" }, contact.display_name),
      el("dl", { class: "facts" },
        contact.phone ? el("dt", null, "Phone") : null, contact.phone ? el("dd", null, contact.phone) : null,
        // Typed by the customer (API channel), never verified: shown as a claim, never linking.
        contact.claimed_phone ? el("dt", null, "Phone (claimed)") : null,
        contact.claimed_phone ? el("dd", { class: "muted", title: "Given by the customer, not verified by a provider" }, contact.claimed_phone) : null,
        contact.email ? el("dt", null, "Email") : null, contact.email ? el("dd", null, contact.email) : null,
        ...attrs.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, typeof v === "string" ? v : JSON.stringify(v))])),
      el("h3", null, "Identities"),
      el("ul", { class: "idents" }, ...contact.identities.map((i) => el("li", null, channelIcon(i.channel_kind), " ", el("span", { class: "addr" }, i.address), i.display_name ? el("span", { class: "muted" }, " · " + i.display_name) : null))),
      el("h3", null, "Consent"),
      consents.length
        ? el("ul", { class: "consents" }, ...consents.map((c) => el("li", { class: "consent-" + c.status }, c.channel_kind + " · " + c.purpose + ": " + c.status.replace("_", " "), el("span", { class: "muted" }, " (" + c.source + ")"))))
        : el("p", { class: "muted" }, "No consent recorded."),
      ...mergeBlock(),
      el("h3", null, "Previous conversations"),
      prev.length
        ? el("ul", { class: "prev" }, ...prev.map((p) => el("li", null, el("a", { href: "#c/" + p.id }, "#" + p.id + " · " + p.status), el("div", { class: "muted preview" }, p.last_message_preview || ""))))
        : el("p", { class: "muted" }, "None."));
  }

  function mergeBlock() {
    const out = [];
    if (S.lastMerge && S.lastMerge.kept === S.context.contact.id) {
      out.push(el("p", { class: "merged", id: "merged" }, "Merged " + S.lastMerge.name + ". ",
        el("button", { type: "button", class: "link", id: "undo-merge", onclick: undoMerge }, "Undo")));
    }
    const dups = S.context.merge_suggestions || [];
    if (!dups.length) return out;
    out.push(el("h3", null, "Possible duplicates"),
      el("ul", { class: "dups" }, ...dups.map((d) => el("li", { dataset: { id: d.id } },
        el("strong", null, d.display_name), " ",
        el("span", { class: "muted" }, d.reason + " · " + d.identities.map((i) => i.channel_kind + " " + i.address).join(", ")), " ",
        el("button", { type: "button", class: "merge", onclick: () => merge(d) }, "Merge")))));
    return out;
  }

  async function merge(d) {
    try {
      const res = await api("/ui/contacts/" + S.context.contact.id + "/merge", { method: "POST", json: { merge_id: d.id } });
      S.lastMerge = { id: res.merge_id, kept: res.kept, name: d.display_name };
      await loadContext();
    } catch (e) { $("c-error").textContent = e.message; }
  }

  async function undoMerge() {
    try {
      await api("/ui/contact_merges/" + S.lastMerge.id + "/undo", { method: "POST" });
      S.lastMerge = null;
      await loadContext();
    } catch (e) { $("c-error").textContent = e.message; }
  }

  function routeLabel(r) {
    const w = windowText(r.window);
    const billing = r.can_send && r.billing ? " — " + r.billing : "";
    return r.name + (r.can_send ? (w ? " — " + w.text : "") : " — can't: " + (r.code || "").replace("_", " ")) + billing;
  }

  function renderRoutes() {
    const sel = $("c-channel");
    const keep = sel.value;
    const routes = S.context.routes;
    sel.replaceChildren(...routes.map((r) => el("option", { value: String(r.channel_id), disabled: !r.can_send }, routeLabel(r))));
    const preferred = routes.find((r) => String(r.channel_id) === keep && r.can_send) || routes.find((r) => r.last_used && r.can_send) || routes.find((r) => r.can_send);
    if (preferred) sel.value = String(preferred.channel_id);
    updateComposer();
  }

  function currentRoute() {
    return S.context && S.context.routes.find((r) => String(r.channel_id) === $("c-channel").value);
  }

  function updateComposer() {
    const note = S.mode === "note";
    $("composer").classList.toggle("note-mode", note);
    $("mode-reply").setAttribute("aria-selected", String(!note));
    $("mode-note").setAttribute("aria-selected", String(note));
    $("c-channel").disabled = note;
    $("c-text").placeholder = note ? "Private note — only your team sees it. @name mentions a colleague." : "Write a reply…  (Ctrl+Enter sends, / for canned replies)";
    $("c-send").textContent = note ? "Add note" : "Send";
    const why = $("c-why");
    why.replaceChildren();
    if (note || !S.context) { $("c-send").disabled = false; updateCounter(); return; }
    const routes = S.context.routes;
    const r = currentRoute();
    const blocked = routes.filter((x) => !x.can_send);
    if (!r) {
      why.append(el("span", { class: "closed" }, routes.length ? "No channel can reach this customer now" : "This inbox has no channel"));
      if (routes.some((x) => x.code === "window_closed" && x.supports_templates)) {
        why.append(el("button", { type: "button", id: "c-template", class: "link", onclick: openTemplates }, "closed — template only: choose a template…"));
      }
    }
    for (const b of blocked) why.append(el("span", { class: "blocked", title: b.reason }, b.name + ": " + b.reason));
    $("c-send").disabled = !r;
    updateCounter();
  }

  // SMS counter from POST /api/v1/sms/preview (encoding, segments, the characters that force
  // UCS-2, estimated cost) for SMS routes; a plain length counter near other channels' limits.
  const updateCounter = debounce(async () => {
    const out = $("c-counter");
    const r = currentRoute();
    const text = $("c-text").value;
    if (S.mode === "note" || !r) { out.textContent = ""; return; }
    if (!r.sms) {
      out.textContent = text.length > r.text_max_length * 0.8 ? text.length + " / " + r.text_max_length : "";
      return;
    }
    if (!text) { out.textContent = ""; return; }
    try {
      const p = await api("/sms/preview", { method: "POST", json: { text, channel_id: r.channel_id } });
      const cost = p.estimated_cost ? " · ~" + p.estimated_cost.amount + " " + p.estimated_cost.currency : "";
      const forced = (p.ucs2_characters || []).length ? " · UCS-2 because of " + p.ucs2_characters.join(" ") : "";
      out.textContent = p.encoding + " · " + p.characters + " chars · " + p.segments + " segment" + (p.segments === 1 ? "" : "s") + cost + forced;
    } catch (_e) { out.textContent = text.length + " chars"; }
  }, 150);

  // ---- template picker (when the window is closed) ---------------------------------------
  async function openTemplates() {
    const id = S.current;
    const list = await api("/ui/conversations/" + id + "/templates");
    if (S.current !== id) return;
    S.templates = list;
    const sel = $("tpl-select");
    sel.replaceChildren(...list.map((t) => el("option", { value: String(t.id) }, t.name + " (" + t.language + ", " + t.category.toLowerCase() + ")")));
    $("tpl").hidden = false;
    $("c-text").hidden = true;
    $("tpl-error").textContent = list.length ? "" : "No approved templates for this inbox's channels yet.";
    drawTemplate();
  }

  function closeTemplates() { $("tpl").hidden = true; $("c-text").hidden = false; }

  function drawTemplate() {
    const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
    const box = $("tpl-params");
    box.replaceChildren();
    if (!t) { $("tpl-preview").textContent = ""; return; }
    for (let i = 1; i <= t.parameters; i++) {
      box.append(el("input", { class: "tpl-param", placeholder: "{{" + i + "}}", "aria-label": "Parameter " + i, oninput: previewTemplate }));
    }
    previewTemplate();
  }

  function previewTemplate() {
    const t = (S.templates || []).find((x) => String(x.id) === $("tpl-select").value);
    if (!t) return;
    const vals = [...document.querySelectorAll("#tpl-params input")].map((i) => i.value);
    $("tpl-preview").textContent = t.body.replace(/\{\{\s*(\d+)\s*\}\}/g, (_m, n) => vals[Number(n) - 1] || "{{" + n + "}}");
  }

  async function sendTemplate() {
    const params = [...document.querySelectorAll("#tpl-params input")].map((i) => i.value);
    try {
      const m = await api("/ui/conversations/" + S.current + "/templates", { method: "POST", json: { template_id: Number($("tpl-select").value), params } });
      putMessage(m);
      renderMessages();
      closeTemplates();
    } catch (e) { $("tpl-error").textContent = e.message; }
  }

  // ---- composer ----------------------------------------------------------------------------
  function setMode(mode) {
    S.mode = mode;
    updateComposer();
    $("c-text").focus();
  }

  function showCanned() {
    const box = $("canned");
    const text = $("c-text").value;
    const m = /^\/([\w\-]*)$/.exec(text);
    if (!m) { box.hidden = true; return; }
    const hits = S.boot.canned_replies.filter((r) => r.short_code.startsWith(m[1].toLowerCase()));
    box.replaceChildren(...hits.map((r, i) => el("li", { class: i === 0 ? "active" : "", dataset: { id: r.id }, onmousedown: (ev) => { ev.preventDefault(); useCanned(r); } },
      el("strong", null, "/" + r.short_code), " ", el("span", { class: "muted" }, r.content.slice(0, 80)))));
    box.hidden = !hits.length;
  }

  function useCanned(r) {
    $("c-text").value = r.content;
    $("canned").hidden = true;
    $("c-text").focus();
    updateCounter();
  }

  async function submit() {
    const text = $("c-text").value.trim();
    const files = window.TM && S.mode !== "note" ? TM.uploadIds() : [];
    if ((!text && !files.length) || !S.current) return;
    $("c-error").textContent = "";
    const id = S.current;
    try {
      if (S.mode === "note") {
        await api("/ui/conversations/" + id + "/notes", { method: "POST", json: { text } });
      } else {
        if (S.othersRepliedSince && $("c-warning").hidden) {
          $("c-warning").hidden = false;
          $("c-warning").textContent = S.othersRepliedSince + " replied while you were writing. Read it, then press Send again to send anyway.";
          return;
        }
        const r = currentRoute();
        const m = await api("/conversations/" + id + "/messages", { method: "POST", json: { text: text || null, channel_id: r ? r.channel_id : null, attachment_ids: files } });
        if (S.current === id) putMessage(m);
        renderMessages();
        if (files.length) TM.clear();
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

  async function retry(messageId) {
    try {
      const m = await api("/ui/messages/" + messageId + "/retry", { method: "POST" });
      putMessage(m);
      renderMessages();
    } catch (e) { $("c-error").textContent = e.message; }
  }

  // ---- triage ------------------------------------------------------------------------------
  async function patch(body) {
    if (!S.current) return;
    try {
      const c = await api("/ui/conversations/" + S.current, { method: "PATCH", json: body });
      if (matches(c)) S.convs.set(c.id, c); else S.convs.delete(c.id);
      renderList();
      renderHead(c);
    } catch (e) { $("c-error").textContent = e.message; }
  }

  function toggleResolve() {
    if (!S.conv) return;
    patch({ status: S.conv.status === "resolved" ? "open" : "resolved" });
  }

  // A small keyboard-first chooser used for assign (a) and label (l).
  function picker(title, items, onChoose, allowNew) {
    const dlg = $("picker");
    $("picker-title").textContent = title;
    const input = $("picker-filter");
    input.value = "";
    let active = 0;
    let shown = items;
    const draw = () => {
      const f = input.value.trim().toLowerCase();
      shown = items.filter((it) => it.label.toLowerCase().includes(f));
      if (allowNew && f && !items.some((it) => it.label.toLowerCase() === f)) shown = [...shown, { label: input.value.trim(), value: input.value.trim(), isNew: true }];
      active = Math.min(active, Math.max(0, shown.length - 1));
      $("picker-list").replaceChildren(...shown.map((it, i) => el("li", { class: (i === active ? "active" : "") + (it.on ? " on" : ""), onmousedown: (ev) => { ev.preventDefault(); choose(it); } },
        it.on ? "✓ " : "", it.isNew ? "Create “" + it.label + "”" : it.label)));
    };
    const choose = (it) => { dlg.close(); onChoose(it); };
    input.oninput = () => { active = 0; draw(); };
    input.onkeydown = (ev) => {
      if (ev.key === "ArrowDown") { active = Math.min(shown.length - 1, active + 1); draw(); ev.preventDefault(); }
      else if (ev.key === "ArrowUp") { active = Math.max(0, active - 1); draw(); ev.preventDefault(); }
      else if (ev.key === "Enter") { ev.preventDefault(); if (shown[active]) choose(shown[active]); }
    };
    draw();
    dlg.showModal();
    input.focus();
  }

  // Agents can be assigned conversations of their inboxes; owners and admins any.
  const canTake = (a, c) => a.active && (a.role !== "agent" || a.inbox_ids.includes(c.inbox_id));

  function pickAssignee() {
    if (!S.current) return;
    const c = S.conv || {};
    const items = [{ label: "Unassigned", value: null, on: c.assignee_id == null },
      ...S.boot.agents.filter((a) => canTake(a, c)).map((a) => ({ label: a.name + (a.id === S.boot.me.id ? " (me)" : ""), value: a.id, on: c.assignee_id === a.id }))];
    picker("Assign to", items, (it) => patch({ assignee_id: it.value }));
  }

  function pickLabel() {
    if (!S.current) return;
    const have = new Set((S.conv && S.conv.labels) || []);
    const items = S.boot.labels.map((l) => ({ label: l.name, value: l.name, on: have.has(l.name) }));
    for (const name of have) if (!items.some((i) => i.value === name)) items.push({ label: name, value: name, on: true });
    picker("Toggle label", items, (it) => {
      const next = new Set(have);
      if (next.has(it.value)) next.delete(it.value); else next.add(it.value);
      patch({ labels: [...next] });
    }, true);
  }

  function pickSnooze() {
    if (!S.current) return;
    const at = (hours) => new Date(Date.now() + hours * 3600 * 1000);
    const tomorrow = new Date(); tomorrow.setDate(tomorrow.getDate() + 1); tomorrow.setHours(9, 0, 0, 0);
    const monday = new Date(); monday.setDate(monday.getDate() + ((8 - monday.getDay()) % 7 || 7)); monday.setHours(9, 0, 0, 0);
    picker("Snooze until", [
      { label: "1 hour", value: at(1) }, { label: "4 hours", value: at(4) },
      { label: "Tomorrow 09:00", value: tomorrow }, { label: "Next Monday 09:00", value: monday },
    ], (it) => patch({ snoozed_until: it.value.toISOString() }));
  }

  // ---- presence ----------------------------------------------------------------------------
  // `typing`: the agent is typing now (keystrokes in the composer), so the server shows the
  // customer a typing indicator where the channel has one. Said at most every 5 s while typing
  // (Telegram's lasts about that long; the server throttles per conversation too); the
  // heartbeat over an idle draft keeps "replying" for colleagues without it.
  const TYPING_EVERY_MS = 5000;
  let lastAnnounce = { id: null, state: null, at: 0, typedAt: 0 };
  function announce(id, state, typing = false) {
    const now = Date.now();
    const same = lastAnnounce.id === id && lastAnnounce.state === state;
    if (same && (typing ? now - lastAnnounce.typedAt < TYPING_EVERY_MS : now - lastAnnounce.at < 10000)) return;
    lastAnnounce = { id, state, at: now, typedAt: typing ? now : same ? lastAnnounce.typedAt : 0 };
    const json = state === "replying" ? { state, typing } : { state };
    // keepalive: "left" is often said while the page unloads.
    api("/ui/conversations/" + id + "/presence", { method: "POST", json, keepalive: state === "left" }).catch(() => {});
  }
  setInterval(() => { if (S.current && !document.hidden) { lastAnnounce.at = 0; announce(S.current, S.typingSince ? "replying" : "viewing"); } }, 15000);

  function onPresence(p) {
    if (p.agent_id === S.boot.me.id) return;
    const per = S.presence.get(p.conversation_id) || new Map();
    const known = per.has(p.agent_id);
    // Expiry counts from when it was said (a replayed old event is already stale).
    const until = (Date.parse(p.at) || Date.now()) + (p.ttl || 30) * 1000;
    if (p.state === "left") per.delete(p.agent_id);
    else per.set(p.agent_id, { name: p.agent_name, state: p.state, until });
    S.presence.set(p.conversation_id, per);
    renderPresence();
    // Someone new arrived where I am: say I am here too, so they need not wait for my next beat.
    if (!known && p.state !== "left" && p.conversation_id === S.current && until > Date.now()) {
      lastAnnounce.at = 0;
      announce(S.current, S.typingSince ? "replying" : "viewing");
    }
  }

  function renderPresence() {
    const box = $("presence");
    const per = S.presence.get(S.current);
    const now = Date.now();
    const live = per ? [...per.values()].filter((x) => x.until > now) : [];
    box.replaceChildren(...live.map((x) => el("span", { class: "who-" + x.state }, x.name + " is " + x.state)));
    box.hidden = !live.length;
  }
  setInterval(renderPresence, 5000);

  // ---- search ------------------------------------------------------------------------------
  const runSearch = debounce(async () => {
    const q = $("search").value.trim();
    const box = $("search-results");
    if (!q) { box.hidden = true; $("list").hidden = false; return; }
    const res = await api("/ui/search?" + new URLSearchParams({ q }));
    box.replaceChildren(
      el("h3", null, "Contacts"),
      res.contacts.length ? el("ul", null, ...res.contacts.map((c) => el("li", { class: "hit" + (c.conversation_id ? "" : " dim"), onclick: () => c.conversation_id && openConversation(c.conversation_id) },
        el("strong", null, c.display_name), " ", el("span", { class: "muted" }, [c.phone, c.email, ...c.identities.map((i) => i.address)].filter(Boolean).join(" · "))))) : el("p", { class: "muted" }, "No contacts."),
      el("h3", null, "Messages"),
      res.messages.length ? el("ul", null, ...res.messages.map((m) => el("li", { class: "hit", onclick: () => openConversation(m.conversation_id) },
        el("strong", null, m.contact_display_name), " ", el("span", { class: "snippet" }, (m.body || "").slice(0, 120))))) : el("p", { class: "muted" }, "No messages."));
    box.hidden = false;
    $("list").hidden = true;
  }, 200);

  // ---- live --------------------------------------------------------------------------------
  function connect() {
    const live = $("live");
    const es = new EventSource("/api/v1/events");
    es.onopen = () => { live.classList.add("on"); live.title = "Live"; };
    es.onerror = () => { live.classList.remove("on"); live.title = "Reconnecting…"; };
    for (const t of ["conversation.created", "conversation.updated"]) {
      es.addEventListener(t, (ev) => { const c = JSON.parse(ev.data); upsertConversation(c.id); refreshUnread(); if (window.TS) TS.refreshQueue(); });
    }
    for (const t of ["message.created", "message.updated"]) {
      es.addEventListener(t, (ev) => {
        const m = JSON.parse(ev.data);
        if (t === "message.created" && m.kind === "note" && ((m.extra || {}).mentions || []).includes(S.boot.me.id) && m.sender_agent_id !== S.boot.me.id) {
          notify(agentName(m.sender_agent_id) + " mentioned you", m.body || "", m.conversation_id);
        }
        if (m.conversation_id !== S.current) return;
        const isNew = !S.messages.has(m.id);
        putMessage(m);
        renderMessages();
        if (isNew && m.direction === "out" && m.kind !== "note" && m.kind !== "system" && m.sender_agent_id && m.sender_agent_id !== S.boot.me.id && S.typingSince) {
          S.othersRepliedSince = agentName(m.sender_agent_id);
        }
        if (isNew && m.direction === "in") { loadContext(); api("/ui/conversations/" + m.conversation_id + "/read", { method: "POST" }).catch(() => {}); }
      });
    }
    // Receipts are applied in batches: several messages of one conversation in one event.
    es.addEventListener("messages.updated", (ev) => {
      const d = JSON.parse(ev.data);
      if (d.conversation_id !== S.current) return;
      for (const m of d.messages || []) putMessage(m);
      renderMessages();
    });
    // A customer's name arrived from the provider's profile API: show it where they are listed.
    es.addEventListener("contact.updated", (ev) => {
      const d = JSON.parse(ev.data);
      for (const id of d.conversation_ids || []) if (S.convs.has(id) || id === S.current) upsertConversation(id);
      if (S.context && S.context.contact && S.context.contact.id === d.id) loadContext();
    });
    es.addEventListener("presence", (ev) => onPresence(JSON.parse(ev.data)));
    es.addEventListener("settings.updated", async () => { S.boot = await api("/ui/bootstrap"); fillFilters(); });
  }

  // Optional browser notifications (mentions), once the agent allows them with the bell.
  function notify(title, body, conversationId) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    const n = new Notification(title, { body: body.slice(0, 140), tag: "tidings-" + conversationId });
    n.onclick = () => { window.focus(); openConversation(conversationId); n.close(); };
  }

  function wireBell() {
    const bell = $("bell");
    if (!bell || !("Notification" in window)) { if (bell) bell.hidden = true; return; }
    const draw = () => { bell.textContent = Notification.permission === "granted" ? "Alerts on" : "Alerts off"; bell.title = Notification.permission === "granted" ? "Notifications on for mentions" : "Turn on notifications for mentions"; };
    bell.addEventListener("click", async () => { await Notification.requestPermission(); draw(); });
    draw();
  }

  // ---- keyboard ----------------------------------------------------------------------------
  function typing(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if ($("picker").open || $("help").open) return;
    if (ev.key === "Escape" && typing(ev.target)) { ev.target.blur(); $("canned").hidden = true; return; }
    if (typing(ev.target)) return;
    const keys = {
      j: () => move(1), k: () => move(-1),
      Enter: () => { if (S.selected) openConversation(S.selected); },
      r: () => S.current && setMode("reply"), n: () => S.current && setMode("note"),
      e: () => S.current && toggleResolve(), a: () => pickAssignee(), l: () => pickLabel(),
      "/": () => $("search").focus(), "?": () => $("help").showModal(),
    };
    keys.x = () => { const id = S.selected ?? S.current; if (id) togglePick(id); };
    const fn = keys[ev.key];
    if (fn) { ev.preventDefault(); fn(); }
  });

  // ---- wiring ------------------------------------------------------------------------------
  function fillSelect(id, first, items) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "" }, first), ...items.map(([v, label]) => el("option", { value: String(v) }, label)));
    sel.value = keep;
  }

  function fillFilters() {
    const b = S.boot;
    fillSelect("f-inbox", "All inboxes", b.inboxes.map((i) => [i.id, i.name]));
    fillSelect("f-channel", "All channels", b.channels.map((c) => [c.id, c.name]));
    fillSelect("f-label", "Any label", b.labels.map((l) => [l.name, l.name]));
    fillSelect("f-assignee", "Anyone", b.agents.map((a) => [a.id, a.name]));
    fillSelect("f-team", "Any team", b.teams.map((t) => [t.id, t.name]));
    fillSelect("t-team", "No team", b.teams.map((t) => [t.id, t.name]));
    fillAssignees();
  }

  function wire() {
    for (const b of document.querySelectorAll(".views button")) {
      b.addEventListener("click", () => { S.view = b.dataset.view; localStorage.setItem("tidings.view", S.view); loadList(); });
    }
    for (const id of ["f-status", "f-inbox", "f-channel", "f-label", "f-assignee", "f-sort", "f-sla", "f-team"]) $(id).addEventListener("change", () => loadList());
    $("more").addEventListener("click", () => loadList(true));
    $("search").addEventListener("input", runSearch);
    $("search").addEventListener("keydown", (ev) => { if (ev.key === "Escape") { $("search").value = ""; runSearch(); } });
    $("mode-reply").addEventListener("click", () => setMode("reply"));
    $("mode-note").addEventListener("click", () => setMode("note"));
    $("c-channel").addEventListener("change", updateComposer);
    $("tpl-select").addEventListener("change", drawTemplate);
    $("tpl-cancel").addEventListener("click", closeTemplates);
    $("tpl-send").addEventListener("click", sendTemplate);
    $("composer").addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
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
        if (r) { ev.preventDefault(); useCanned(r); return; }
      }
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submit(); }
    });
    $("t-status").addEventListener("change", () => {
      if ($("t-status").value === "snoozed") { $("t-status").value = S.conv.status; pickSnooze(); } else patch({ status: $("t-status").value });
    });
    $("t-priority").addEventListener("change", () => patch({ priority: $("t-priority").value }));
    $("t-assignee").addEventListener("change", () => patch({ assignee_id: $("t-assignee").value ? Number($("t-assignee").value) : null }));
    // Narrow screens show the list or the thread; tablets open the contact panel as a drawer.
    $("t-back").addEventListener("click", () => document.querySelector(".panes").classList.remove("thread-open", "contact-open"));
    const contactDrawer = (open) => {
      document.querySelector(".panes").classList.toggle("contact-open", open);
      $("t-contact").setAttribute("aria-expanded", String(open));
    };
    $("t-contact").addEventListener("click", () => contactDrawer(!document.querySelector(".panes").classList.contains("contact-open")));
    $("contact-close").addEventListener("click", () => contactDrawer(false));
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && document.querySelector(".panes.contact-open")) contactDrawer(false); });
    $("t-team").addEventListener("change", () => patch({ team_id: $("t-team").value ? Number($("t-team").value) : null }));
    $("t-resolve").addEventListener("click", toggleResolve);
    window.addEventListener("hashchange", () => {
      const m = /^#c\/(\d+)$/.exec(location.hash);
      if (m && Number(m[1]) !== S.current) openConversation(Number(m[1]));
    });
    window.addEventListener("pagehide", () => { if (S.current) { lastAnnounce.id = null; announce(S.current, "left"); } });
    setInterval(renderList, 60000); // refresh "x min ago" and window countdowns
    if (window.TS) TS.attach({ boot: S.boot, reload: () => loadList(), open: (id) => openConversation(id) });
  }

  // Backpressure is visible (issue 14): the customer lane's lag, as the server measures it
  // (cached there, about once a second per process), polled every few seconds. The status
  // lane (delivery/read receipts) lags by design during a broadcast and delays nothing an
  // agent acts on, so it stays out of the inbox: admins see it in /metrics and `tidings doctor`.
  const LAG_POLL_MS = 3000;
  const lagText = (s) => (s >= 90 ? Math.round(s / 60) + " min" : Math.round(s) + " s");
  async function pollLag() {
    if (!document.hidden) {
      try {
        const lag = await api("/inbound/lag");
        const banner = $("lag-banner");
        const late = lag.customer.seconds > lag.warn_seconds;
        if (late) {
          banner.textContent = "Incoming messages delayed by " + lagText(lag.customer.seconds);
          banner.title = lag.customer.pending + " incoming events waiting to be processed";
        }
        banner.hidden = !late;
      } catch (_e) { /* offline: the live dot says so */ }
    }
    setTimeout(pollLag, LAG_POLL_MS);
  }

  async function start() {
    S.boot = await api("/ui/bootstrap");
    fillFilters();
    wire();
    wireBell();
    connect();
    pollLag();
    await loadList();
    const m = /^#c\/(\d+)$/.exec(location.hash);
    if (m) openConversation(Number(m[1]));
    document.body.dataset.ready = "1";
  }
  start();
})();
