// Campaigns (admin): the list with live progress, the editor (audience, content per channel,
// schedule, quiet hours, rate cap, fallback), the per-recipient preview with SMS segments and
// cost, pause/resume/cancel, and the report with the CSV export. Built on the REST API
// (/api/v1/campaigns); live over the same SSE stream as the inbox (`campaign.updated`).
// As everywhere, data reaches the page only through textContent and attributes (el()).
import { pickContacts } from "./contact-picker.js";
import { checkedValues, errorBox, field, grid, guarded, onSubmit, options, row } from "./forms.js";
import { api, avatar, channelIcon, clock, confirmAction, debounce, el, fact, icon, kindOf } from "./ui.js";

const root = document.getElementById("campaigns-main");
// Each render builds into its own box and shows it only if no newer render started meanwhile
// (a click and a live event may both re-render): sections append to the box they began with.
let main = root;
let renders = 0;
// What each channel kind can do comes from the adapter registry (bootstrap `kinds`).
const can = (boot, kind, what) => Boolean(boot.kinds?.find((k) => k.kind === kind)?.[what]);
const STATES = ["pending", "queued", "sent", "delivered", "read", "failed", "skipped"];
let notice = null;
// What Pause answered, kept on that campaign's page until the agent leaves it: a live
// event's re-render must not swallow it.
let paused = null;
let view = null; // what is on screen: {kind: "list"} or {kind: "detail", id}

// ---- progress ------------------------------------------------------------------------------
function progressOf(counts) {
  const c = counts || {};
  const total = c.total || 0;
  const done = total - (c.pending || 0) - (c.queued || 0);
  return { total, done, pct: total ? Math.floor((done * 100) / total) : 0 };
}

function progressBar(counts, wide) {
  const p = progressOf(counts);
  const bar = el(
    "span",
    {
      class: `progress${wide ? " progress-wide" : ""}`,
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(p.pct),
    },
    el("span"),
  );
  bar.firstChild.style.width = `${p.pct}%`; // CSSOM, not an inline style attribute: CSP-safe
  bar.dataset.done = p.total && p.done === p.total ? "1" : "0";
  return el("span", { class: "progress-box" }, bar, el("span", { class: "pct" }, `${p.pct}% · ${p.done} / ${p.total}`));
}

// Recipients per state; with the report's figure, also how many went by the fallback channel
// (they are counted in their state too: a fallback is how, not where, a message stands).
function countsLine(counts, fallbacks) {
  const c = counts || {};
  return el(
    "div",
    { class: "counts" },
    ...STATES.map((s) => el("span", { dataset: { state: s } }, `${s} `, el("b", null, String(c[s] || 0)))),
    fallbacks == null
      ? null
      : el("span", { class: "fallbacks", id: "c-fallbacks" }, "by fallback ", el("b", null, String(fallbacks))),
  );
}

// A draft has no progress: nothing was sent, and rows a CSV upload already added (some of
// them skipped as bad numbers) are an audience, not a share of it done.
const notLaunched = (size) =>
  el("span", { class: "muted not-launched" }, size == null ? "not launched" : `not launched · ${size} in the audience`);

// Where a launched campaign's queued messages stand: held by a pause, or already claimed
// for sending when it was paused (those may still arrive).
function outboxLine(c) {
  const o = c.outbox;
  if (!o) return "—";
  if (c.state === "paused") {
    const parts = [`${o.held} held until you resume`];
    if (o.in_flight) parts.push(`${o.in_flight} were already being sent when you paused and may still arrive`);
    return parts.join("; ");
  }
  return `${o.waiting + o.held} queued · ${o.in_flight} being sent`;
}

const stateChip = (s) => el("span", { class: `state state-${s}`, dataset: { state: s } }, s);

// ---- list ----------------------------------------------------------------------------------
async function list() {
  const out = main;
  view = { kind: "list" };
  const rows = await api("/campaigns");
  const table = grid(
    "campaigns-table",
    ["Name", "State", "Progress", "Counts", "Created"],
    rows.map((c) =>
      row(
        { dataset: { id: c.id } },
        el("a", { href: `#c/${c.id}` }, c.name),
        el("td", { class: "c-state" }, stateChip(c.state)),
        el("td", { class: "c-progress" }, c.state === "draft" ? notLaunched() : progressBar(c.counts)),
        el("td", { class: "c-counts" }, c.state === "draft" ? "" : countsLine(c.counts)),
        clock(c.created_at),
      ),
    ),
  );
  out.append(
    el("h1", null, "Campaigns"),
    rows.length ? table : el("p", { class: "muted", id: "no-campaigns" }, "No campaigns yet."),
    el("p", null, el("a", { href: "#new", id: "new-campaign" }, "New campaign")),
  );
}

function updateRow(data) {
  const row = root.querySelector(`#campaigns-table tr[data-id="${data.id}"]`);
  if (!row) {
    if (view && view.kind === "list") render();
    return;
  }
  row.querySelector(".c-state").replaceChildren(stateChip(data.state));
  if (data.counts && data.state !== "draft") {
    row.querySelector(".c-progress").replaceChildren(progressBar(data.counts));
    row.querySelector(".c-counts").replaceChildren(countsLine(data.counts));
  }
}

// ---- editor: audience → message → preview and send -----------------------------------------
// Three steps over one draft. The audience step saves the draft (a draft may come before its
// message) so that the server counts who is in it and who each channel reaches; the message
// step shows a text per channel only for the channels the audience uses; the preview is the
// server's own plan (POST /campaigns/{id}/preview), the same one the launch follows.
const STEPS = [
  ["audience", "Audience", "users"],
  ["message", "Message", "message-circle"],
  ["preview", "Preview and send", "send"],
];

function stepper(id, current) {
  return el(
    "ol",
    { class: "steps", id: "c-steps", "aria-label": "Campaign steps" },
    ...STEPS.map(([key, label, ic], i) => {
      const here = key === current;
      const inner = [el("span", { class: "step-n" }, String(i + 1)), icon(ic), el("span", null, label)];
      const target = key === "audience" ? (id ? `#edit/${id}` : "#new") : `#edit/${id}/${key}`;
      const node =
        here || !id
          ? el("span", { "aria-current": here ? "step" : null, class: here ? "" : "muted" }, ...inner)
          : el("a", { href: target, id: `c-step-${key}` }, ...inner);
      return el("li", { class: here ? "current" : "", dataset: { step: key } }, node);
    }),
  );
}

const EMPTY = {
  name: "",
  content: {},
  audience: {},
  channel_ids: [],
  fallback: {},
  quiet_hours: {},
  rate_per_second: null,
  scheduled_at: null,
};

// "6 recipients · SMS line 6 · WhatsApp 2 · 2 skipped": who is in the audience and who each
// chosen channel can reach (an address there), before any message is written.
function reachBlock(p, channels) {
  const t = p.totals;
  const skipped = Object.entries(t.skipped).filter(([r]) => r !== "no_content");
  const skippedN = skipped.reduce((a, [, n]) => a + n, 0);
  const reach = Object.entries(t.reach || {});
  return el(
    "div",
    { class: "reach", id: "c-reach", role: "status" },
    el("span", { class: "reach-total" }, el("b", { id: "c-reach-count" }, String(t.recipients)), " recipients"),
    ...reach.map(([chId, r]) => {
      const ch = channels.find((c) => String(c.id) === chId);
      return el(
        "span",
        { class: "reach-ch", dataset: { channel: chId } },
        channelIcon(r.kind, r.name),
        ` ${r.name} `,
        el("b", null, String(r.recipients)),
        ch && !ch.active ? " (disabled)" : "",
      );
    }),
    skippedN
      ? el(
          "span",
          { class: "reach-skipped" },
          `${skippedN} skipped (${skipped.map(([r, n]) => `${r.replaceAll("_", " ")} ${n}`).join(", ")})`,
        )
      : null,
    reach.length ? null : el("span", { class: "muted" }, "Choose at least one channel."),
  );
}

// The kinds the audience actually uses: a chosen channel with someone reachable on it.
function usedKinds(p, channels, chosenIds) {
  const reach = p?.totals?.reach || {};
  const kinds = new Set();
  for (const ch of channels)
    if (chosenIds.includes(ch.id) && (reach[String(ch.id)]?.recipients || 0) > 0) kinds.add(ch.kind);
  return kinds;
}

// The draft being edited (the page's view from now on), with what its steps need; null when
// it is no longer a draft (the page moves to its detail).
async function loadEditor(id) {
  view = { kind: "edit", id };
  const [channels, boot, c] = await Promise.all([
    api("/channels"),
    api("/ui/bootstrap"),
    id ? api(`/campaigns/${id}`) : Promise.resolve(EMPTY),
  ]);
  if (id && c.state !== "draft") {
    location.hash = `#c/${id}`;
    return null;
  }
  const preview = id ? await api(`/campaigns/${id}/preview?sample=0`, { method: "POST" }) : null;
  return { channels, boot, c, preview };
}

// A checkbox chip (a channel or a label): the box with `input` attributes, a lead (icon or dot), the name.
const checkChip = (input, lead, name) =>
  el("label", { class: "check-chip" }, el("input", { type: "checkbox", ...input }), lead, el("span", null, name));
// The chips as a labelled group, or what to do when there are none.
const chipGroup = (id, label, chips, none) =>
  el(
    "div",
    { class: "checks", id, role: "group", "aria-label": label },
    ...(chips.length ? chips : [el("span", { class: "muted" }, none)]),
  );

async function stepAudience(id) {
  const out = main;
  const data = await loadEditor(id);
  if (!data) return;
  const { channels, boot, c, preview } = data;
  const err = errorBox();
  const form = el("form", { class: "stack", id: "campaign-form" });
  const name = el("input", { id: "c-name", required: true, value: c.name, maxlength: "200" });

  // Channels, in order of preference: the checked ones, in the order listed.
  const chosen = new Set(c.channel_ids);
  const chBoxes = channels.map((ch) =>
    checkChip(
      { value: String(ch.id), checked: chosen.has(ch.id), dataset: { kind: ch.kind } },
      channelIcon(ch.kind),
      ch.name,
    ),
  );
  const chBox = chipGroup("c-channels", "Channels", chBoxes, "No channels yet: connect one in Settings.");

  const aud = c.audience || {};
  const labelSet = new Set(aud.labels || []);
  const labelBoxes = boot.labels.map((l) => {
    const dot = el("span", { class: "label-dot" });
    if (l.color) dot.style.backgroundColor = l.color; // CSSOM, not a style attribute: CSP-safe
    return checkChip({ value: l.name, checked: labelSet.has(l.name) }, dot, l.name);
  });
  const filters = el("textarea", { id: "c-filters", rows: "2", placeholder: "plan=gold\ncity=Berlin" });
  filters.value = Object.entries(aud.filters || {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  const contactIds = el("input", {
    id: "c-contacts",
    placeholder: "12, 15, 31",
    value: (aud.contact_ids || []).join(", "),
  });
  const all = el("input", { id: "c-all", type: "checkbox", checked: !!aud.all_contacts });
  const csv = el("input", { id: "c-csv", type: "file", accept: ".csv,text/csv" });
  const region = el("input", { id: "c-region", placeholder: "DE", maxlength: "2", size: "3" });
  const audBox = el(
    "fieldset",
    { class: "group-box", id: "c-audience" },
    el("legend", null, "Who gets it"),
    el("span", null, "Labels"),
    chipGroup("c-labels", "Labels", labelBoxes, "No labels yet."),
    ...field("Segment", filters, "Contact attributes that must all match, one name=value per line."),
    ...field(
      "Contacts",
      el("span", { class: "picker-row" }, contactIds, pickButton(contactIds, boot.labels)),
      "Chosen from Contacts (or contact ids, comma-separated).",
    ),
    ...field("All contacts", all, "Everyone in the workspace (narrowed by labels and segment)."),
    ...field(
      "CSV upload",
      csv,
      "A phone column; other columns become {{placeholders}}. Bad rows are reported, never dropped.",
    ),
    ...field("Region", region, "Read national numbers in this region (ISO code), e.g. DE."),
  );

  const readAudience = () => {
    const f = {};
    for (const line of filters.value.split("\n")) {
      const i = line.indexOf("=");
      if (i > 0) f[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const ids = contactIds.value
      .split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
    if (ids.some((n) => !Number.isInteger(n)))
      throw new Error("Contacts: give contact ids (numbers), comma-separated.");
    const audience = {};
    const labels = checkedValues(labelBoxes);
    if (labels.length) audience.labels = labels;
    if (Object.keys(f).length) audience.filters = f;
    if (ids.length) audience.contact_ids = ids;
    if (all.checked) audience.all_contacts = true;
    return {
      name: name.value,
      audience,
      channel_ids: checkedValues(chBoxes).map(Number),
    };
  };

  // Saving the audience: the draft is created (or changed), the CSV added; then either the
  // count is shown here ("Count recipients") or the message step opens ("Next").
  const count = el("button", { type: "submit", id: "c-count" }, "Save and count");
  const next = el("button", { type: "submit", class: "primary", id: "c-next" }, "Next: message", icon("arrow-right"));
  onSubmit(form, err, async (submitter) => {
    next.disabled = count.disabled = true;
    try {
      const fields = readAudience();
      const saved = id
        ? await api(`/campaigns/${id}`, { method: "PATCH", json: fields })
        : await api("/campaigns", { method: "POST", json: fields });
      let uploaded = null;
      if (csv.files?.[0]) {
        const body = new FormData();
        body.append("file", csv.files[0]);
        const q = region.value.trim() ? `?region=${encodeURIComponent(region.value.trim())}` : "";
        try {
          uploaded = await api(`/campaigns/${saved.id}/audience/csv${q}`, { method: "POST", body });
        } catch (e) {
          notice = { text: `Saved, but the CSV was not added: ${e.message}`, error: true };
          location.hash = `#edit/${saved.id}`;
          if (id === saved.id) render();
          return;
        }
      }
      notice = { text: `Saved ${saved.name}.`, csv: uploaded };
      const hash = submitter === count ? `#edit/${saved.id}` : `#edit/${saved.id}/message`;
      if (location.hash === hash) render();
      else location.hash = hash;
    } finally {
      next.disabled = count.disabled = false;
    }
  });

  form.append(
    ...field("Name", name, "Only your team sees it."),
    el("span", null, "Channels"),
    chBox,
    el("small", null, "In order of preference; the contact's preferred channel goes first when it is one of these."),
    audBox,
    el("div", { class: "full step-foot" }, count, next),
    el("div", { class: "full" }, err),
  );
  out.append(
    el("h1", null, id ? `Edit “${c.name}”` : "New campaign"),
    stepper(id, "audience"),
    preview
      ? reachBlock(preview, channels)
      : el("p", { class: "muted", id: "c-reach" }, "Choose who gets it, then save to count them."),
    form,
  );
}

async function stepMessage(id, uploaded) {
  const out = main;
  const data = await loadEditor(id);
  if (!data) return;
  const { channels, boot, c, preview } = data;
  const templates = await api("/admin/templates").catch(() => []);
  const err = errorBox();
  const form = el("form", { class: "stack", id: "campaign-form" });
  const chosenIds = c.channel_ids.length ? c.channel_ids : channels.map((ch) => ch.id);
  const used = usedKinds(preview, channels, chosenIds);
  const chosen = channels.filter((ch) => chosenIds.includes(ch.id));
  const content = c.content || {};

  const meters = new Map();
  const meter = (key) => {
    const m = el("span", { class: "sms-meter", id: `sms-meter${key ? `-${key}` : ""}`, "aria-live": "polite" });
    meters.set(key, m);
    return m;
  };
  const firstSms = chosen.find((ch) => can(boot, ch.kind, "sms"));
  const measure = debounce(async (key, value) => {
    const m = meters.get(key);
    if (!m) return;
    if (!value.trim()) {
      m.textContent = "";
      return;
    }
    try {
      const p = await api("/sms/preview", {
        method: "POST",
        json: { text: value, channel_id: firstSms ? firstSms.id : null },
      });
      const cost = p.estimated_cost
        ? ` · about ${p.estimated_cost.amount} ${p.estimated_cost.currency} per recipient`
        : "";
      m.textContent = `SMS: ${p.segments}${p.segments === 1 ? " segment" : " segments"} · ${p.encoding} · ${p.characters} characters${cost}${p.ucs2_characters.length ? ` · non-GSM: ${p.ucs2_characters.join(" ")}` : ""}`;
      m.classList.toggle("many", p.segments > 1);
    } catch (e) {
      m.textContent = e.message;
    }
  }, 250);

  const text = el("textarea", { id: "c-text", rows: "4", placeholder: "Hi {{first_name}}, ..." });
  text.value = content.text || "";
  if (firstSms) {
    text.addEventListener("input", () => measure("", text.value));
    if (text.value) measure("", text.value);
  }

  // A text of its own per channel kind, offered only for the kinds this audience uses (and
  // kept for a kind that already has one), and only when more than one kind is used: with
  // one, the message above is that channel's text.
  const variantKinds = [...new Set(chosen.map((ch) => ch.kind))].filter(
    (k) => can(boot, k, "campaign_text") && ((used.size > 1 && used.has(k)) || content.texts?.[k]),
  );
  const perKind = new Map(
    variantKinds.map((k) => {
      const t = el("textarea", { id: `c-text-${k}`, rows: "2", placeholder: "(the message above)" });
      t.value = content.texts?.[k] || "";
      return [k, t];
    }),
  );
  const variants = perKind.size
    ? el(
        "fieldset",
        { class: "group-box", id: "c-variants" },
        el("legend", null, "Per channel (optional)"),
        ...[...perKind.entries()].flatMap(([k, t]) => {
          const label = kindOf(k)?.label || k;
          const parts = field(`Text for ${label}`, t);
          if (can(boot, k, "sms")) {
            t.addEventListener("input", () => measure(k, t.value));
            parts.push(el("span"), meter(k));
          }
          return parts;
        }),
      )
    : null;

  // The WhatsApp-style template, offered where a chosen channel sends templates. Given one,
  // the plan sends it there to everyone; without one, free text goes only into an open
  // service window (the outbound gate, actions/gate.py, as every send).
  const tplKinds = [...new Set(chosen.map((ch) => ch.kind))].filter((k) => can(boot, k, "templates"));
  const tpl = content.template || {};
  const approved = templates.filter((t) => String(t.status).toLowerCase() === "approved");
  const tplName = el("input", {
    id: "c-tpl-name",
    list: "c-tpl-list",
    value: tpl.name || "",
    placeholder: "spring_sale",
  });
  const tplLang = el("input", { id: "c-tpl-lang", value: tpl.language || "en_US" });
  const tplParams = el("input", {
    id: "c-tpl-params",
    value: (tpl.params || []).join(", "),
    placeholder: "{{first_name}}, {{code}}",
  });
  const tplBox =
    tplKinds.length || tpl.name
      ? el(
          "fieldset",
          { class: "group-box", id: "c-template" },
          el("legend", null, `Template for ${tplKinds.map((k) => kindOf(k)?.label || k).join(", ") || "WhatsApp"}`),
          el(
            "p",
            { class: "muted full-row" },
            "With a template, these channels send it to everyone (it may open a conversation). Without one, only customers who wrote within the service window get the message above; the others go by the fallback, or are skipped.",
          ),
          ...field(
            "Approved template",
            tplName,
            approved.length ? "" : "No approved templates yet: sync them in Settings → Templates.",
          ),
          el(
            "datalist",
            { id: "c-tpl-list" },
            ...approved.map((t) => el("option", { value: t.name }, `${t.name} (${t.language}, ${t.channel_name})`)),
          ),
          ...field("Language", tplLang),
          ...field(
            "Parameters",
            tplParams,
            "Body parameters in order, comma-separated; each may use {{placeholders}}.",
          ),
        )
      : null;

  // Schedule, quiet hours, rate, fallback: folded away, open when any is set.
  const sched = el("input", { id: "c-schedule", type: "datetime-local" });
  if (c.scheduled_at) {
    const d = new Date(c.scheduled_at);
    sched.value = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  const qStart = el("input", { id: "c-quiet-start", type: "time", value: c.quiet_hours?.start || "" });
  const qEnd = el("input", { id: "c-quiet-end", type: "time", value: c.quiet_hours?.end || "" });
  const rate = el("input", {
    id: "c-rate",
    type: "number",
    min: "0.1",
    step: "any",
    value: c.rate_per_second == null ? "" : String(c.rate_per_second),
    placeholder: "no cap",
  });
  const fb = c.fallback || {};
  const fbPairs = channels.map((ch) => [ch.id, `${ch.name} (${kindOf(ch.kind)?.label || ch.kind})`]);
  const fbChannel = el("select", { id: "c-fb-channel" }, ...options([["", "No fallback"], ...fbPairs]));
  fbChannel.value = fb.to_channel_id ? String(fb.to_channel_id) : "";
  const fbAfter = el("input", {
    id: "c-fb-after",
    type: "number",
    min: "1",
    value: fb.after_seconds ? String(fb.after_seconds) : "",
    placeholder: "seconds",
  });
  const fbFailed = el("input", {
    id: "c-fb-failed",
    type: "checkbox",
    checked: fb.to_channel_id ? !!fb.on_failed : true,
  });
  const fbWindow = el("input", {
    id: "c-fb-window",
    type: "checkbox",
    checked: fb.to_channel_id ? !!fb.on_window_closed : true,
  });
  const anySet = c.scheduled_at || c.quiet_hours?.start || c.rate_per_second || fb.to_channel_id;
  const sending = el(
    "details",
    { class: "group-box sending", id: "c-sending", open: !!anySet },
    el("summary", { id: "c-sending-toggle" }, icon("clock"), " Schedule, quiet hours, rate cap and SMS fallback"),
    el(
      "div",
      { class: "sending-grid" },
      ...field("Start at", sched, "Empty: when launched. Your local time."),
      ...field(
        "Quiet hours from",
        qStart,
        "In each recipient's own time zone (phone number's region, or a timezone attribute / CSV column).",
      ),
      ...field("Quiet hours until", qEnd),
      ...field("Rate cap (messages/s)", rate, "Never above each channel's own limit either."),
      ...field("Fallback to", fbChannel, "Usually SMS: where a chosen channel cannot deliver."),
      ...field("…if not delivered within", fbAfter, "Seconds; empty: no timer."),
      ...field("…if it failed", fbFailed),
      ...field("…if the window is closed and no template fits", fbWindow),
    ),
  );

  const readMessage = () => {
    const body = {};
    if (text.value.trim()) body.text = text.value;
    const texts = {};
    for (const [k, t] of perKind) if (t.value.trim()) texts[k] = t.value;
    if (Object.keys(texts).length) body.texts = texts;
    if (tplName.value.trim())
      body.template = {
        name: tplName.value.trim(),
        language: tplLang.value.trim() || "en_US",
        params: tplParams.value
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean),
      };
    if (!Object.keys(body).length) throw new Error("Message: write the text (or choose a template).");
    return {
      content: body,
      quiet_hours: qStart.value && qEnd.value ? { start: qStart.value, end: qEnd.value } : {},
      rate_per_second: rate.value === "" ? null : Number(rate.value),
      scheduled_at: sched.value ? new Date(sched.value).toISOString() : null,
      fallback: fbChannel.value
        ? {
            to_channel_id: Number(fbChannel.value),
            on_failed: fbFailed.checked,
            on_window_closed: fbWindow.checked,
            ...(fbAfter.value ? { after_seconds: Number(fbAfter.value) } : {}),
          }
        : {},
    };
  };
  const next = el("button", { type: "submit", class: "primary", id: "c-next" }, "Next: preview", icon("arrow-right"));
  onSubmit(form, err, async () => {
    next.disabled = true;
    try {
      await api(`/campaigns/${id}`, { method: "PATCH", json: readMessage() });
      location.hash = `#edit/${id}/preview`;
    } finally {
      next.disabled = false;
    }
  });
  const parts = [
    ...field(
      "Message",
      text,
      "Sent on every channel without its own text. Placeholders: {{name}}, {{first_name}}, {{phone}}, any attribute or CSV column.",
    ),
    firstSms ? el("span") : null,
    firstSms ? meter("") : null,
    variants,
    tplBox,
    sending,
    el(
      "div",
      { class: "full step-foot" },
      el("a", { href: `#edit/${id}`, id: "c-back", class: "button" }, icon("arrow-left"), " Audience"),
      next,
    ),
    el("div", { class: "full" }, err),
  ];
  form.append(...parts.filter(Boolean));
  out.append(
    el("h1", null, c.name),
    stepper(id, "message"),
    ...(uploaded ? [csvReport(uploaded)] : []),
    reachBlock(preview, channels),
    form,
  );
}

async function stepPreview(id) {
  const out = main;
  const data = await loadEditor(id);
  if (!data) return;
  const { c } = data;
  const p = await previewBlock(id);
  const err = errorBox();
  out.append(
    el("h1", null, c.name),
    stepper(id, "preview"),
    p.block,
    el(
      "div",
      { class: "actions step-foot" },
      el("a", { href: `#edit/${id}/message`, id: "c-back", class: "button" }, icon("arrow-left"), " Message"),
      launchButton(c, p.totals, err),
    ),
    err,
  );
}

// Launch (or schedule) after a confirmation that states how many recipients, on which
// channels, and the estimated cost; then the campaign's page shows its progress.
function launchButton(c, totals, err) {
  return el(
    "button",
    {
      type: "button",
      class: "primary",
      id: "c-launch",
      onclick: async () => {
        const t = totals || (await api(`/campaigns/${c.id}/preview?sample=0`, { method: "POST" })).totals;
        const sending = t.recipients - Object.values(t.skipped).reduce((a, b) => a + b, 0);
        const when = c.scheduled_at ? `at ${clock(c.scheduled_at)}` : "now";
        const ok = await confirmAction({
          title: `Send “${c.name}” to ${sending} ${sending === 1 ? "recipient" : "recipients"} ${when}?`,
          consequences: [
            `${
              Object.values(t.by_channel)
                .map((b) => `${b.recipients} via ${b.name}`)
                .join(", ") || "Nobody can be sent to"
            }.`,
            `Estimated cost: ${costText(t.estimated_cost)}${t.sms_segments ? ` (${t.sms_segments} SMS segments)` : ""}.`,
            ...(t.recipients > sending ? [`${t.recipients - sending} skipped (see the preview for why).`] : []),
            "Messages cannot be unsent; you can pause or cancel what has not gone yet.",
          ],
          confirm: c.scheduled_at ? "Schedule" : `Send to ${sending}`,
          danger: false,
        });
        if (!ok) return;
        await guarded(err, async () => {
          await api(`/campaigns/${c.id}/launch`, { method: "POST" });
          if (location.hash === `#c/${c.id}`) await render();
          else location.hash = `#c/${c.id}`;
        });
      },
    },
    icon("send"),
    c.scheduled_at ? " Schedule…" : " Launch…",
  );
}

const costText = (cost) =>
  Object.entries(cost || {})
    .map(([cur, amount]) => `${money(amount)} ${cur}`)
    .join(" + ") || "—";

function csvReport(r) {
  const bad = [
    ...r.invalid.map((x) => [`row ${x.row}: ${x.error}`]),
    ...r.duplicates.map((x) => [`row ${x.row}: ${x.phone} is a duplicate`]),
  ];
  return el(
    "div",
    { class: "csv-report", id: "csv-report" },
    el(
      "p",
      null,
      `CSV: ${r.rows} rows, ${r.added} added, ${r.contacts_created} new contacts, ${r.invalid.length} invalid, ${r.duplicates.length} duplicates.`,
    ),
    bad.length ? el("ul", null, ...bad.slice(0, 50).map(([t]) => el("li", null, t))) : null,
    bad.length > 50
      ? el("p", { class: "muted" }, `… and ${bad.length - 50} more; all are in the recipients CSV export.`)
      : null,
  );
}

// ---- detail: progress, actions, preview, report ---------------------------------------------
async function detail(id, uploaded) {
  const out = main;
  view = { kind: "detail", id };
  const [c, channels] = await Promise.all([api(`/campaigns/${id}`), api("/channels").catch(() => [])]);
  const preview = c.state === "draft" ? await previewBlock(id) : null;
  const fbId = c.fallback?.to_channel_id;
  const fbChannel = fbId ? channels.find((ch) => ch.id === fbId) : null;
  const err = errorBox();
  const move = (action) =>
    guarded(err, async () => {
      const moved = await api(`/campaigns/${id}/${action}`, { method: "POST" });
      paused = action === "pause" && moved.outbox ? { id, text: `Paused: ${outboxLine(moved)}.` } : null;
      await render();
    });
  const buttons = [];
  if (c.state === "draft") {
    buttons.push(el("a", { href: `#edit/${id}`, id: "c-edit" }, "Edit"));
    buttons.push(launchButton(c, preview.totals, err));
  }
  if (c.state === "running" || c.state === "scheduled")
    buttons.push(el("button", { type: "button", id: "c-pause", onclick: () => move("pause") }, "Pause"));
  if (c.state === "paused")
    buttons.push(
      el("button", { type: "button", class: "primary", id: "c-resume", onclick: () => move("resume") }, "Resume"),
    );
  if (["draft", "scheduled", "running", "paused"].includes(c.state))
    buttons.push(
      el(
        "button",
        {
          type: "button",
          id: "c-cancel",
          onclick: async () => {
            const ok = await confirmAction({
              title: `Cancel the campaign “${c.name}”?`,
              consequences: [
                "Recipients not yet sent to are skipped; messages already sent stay sent.",
                "A cancelled campaign cannot be resumed: you would create a new one.",
              ],
              confirm: "Cancel campaign",
            });
            if (ok) move("cancel");
          },
        },
        "Cancel campaign",
      ),
    );
  const facts = el(
    "dl",
    { class: "facts" },
    ...fact("State", stateChip(c.state), { id: "c-state" }),
    ...fact("Progress", c.state === "draft" ? notLaunched(preview.total) : progressBar(c.counts, true), {
      id: "c-progress",
    }),
    ...(c.state === "draft"
      ? []
      : [
          ...fact("Recipients", countsLine(c.counts), { id: "c-counts" }),
          ...fact("Outbox", outboxLine(c), { id: "c-outbox" }),
        ]),
    ...fact("Schedule", c.scheduled_at ? clock(c.scheduled_at) : "when launched"),
    ...fact(
      "Quiet hours",
      c.quiet_hours?.start ? `${c.quiet_hours.start}–${c.quiet_hours.end} recipient time` : "none",
    ),
    ...fact("Rate cap", c.rate_per_second ? `${c.rate_per_second} messages/s` : "channel limits only"),
    ...fact("Fallback", fbId ? (fbChannel ? fbChannel.name : "a removed channel") : "none", { id: "c-fallback" }),
  );
  const extra = [];
  if (paused && paused.id === id && c.state === "paused")
    extra.push(el("p", { class: "notice", role: "status", id: "c-paused" }, paused.text));
  if (uploaded) extra.push(csvReport(uploaded));
  out.append(el("h1", null, c.name), ...extra, facts, el("div", { class: "actions" }, ...buttons), err);
  if (preview) out.append(preview.block);
  else out.append(el("div", { id: "c-report" }, await reportBlock(id, out)));
}

async function previewBlock(id) {
  const p = await api(`/campaigns/${id}/preview?sample=50`, { method: "POST" });
  const t = p.totals;
  const skippedN = Object.values(t.skipped).reduce((a, b) => a + b, 0);
  return {
    total: t.recipients,
    totals: t,
    block: el(
      "section",
      { id: "c-preview" },
      el("h2", null, "What each recipient gets"),
      el(
        "div",
        { class: "tiles" },
        tile("Recipients", t.recipients, "p-recipients"),
        ...Object.entries(t.by_channel).map(([chId, b]) => tile(`via ${b.name}`, b.recipients, `p-via-${chId}`)),
        tile("Skipped", skippedN, "p-skipped"),
        tile("SMS segments", t.sms_segments, "p-segments"),
        tile("Estimated cost", costText(t.estimated_cost), "p-cost"),
      ),
      skippedN
        ? el(
            "p",
            { class: "muted", id: "p-skip-reasons" },
            `Skipped: ${Object.entries(t.skipped)
              .map(([r, n]) => `${r.replaceAll("_", " ")} ${n}`)
              .join(", ")}`,
          )
        : null,
      el(
        "ul",
        { class: "preview-list", id: "preview-list", "aria-label": "Sample of recipients" },
        ...p.sample.map((r) => previewCard(r, t)),
      ),
      p.sample.length < t.recipients
        ? el("p", { class: "muted" }, `The first ${p.sample.length} of ${t.recipients} recipients.`)
        : null,
    ),
  };
}

// One recipient as they will get it: who, on which channel (and why), the text rendered with
// their own values or the template, SMS parts and cost; or why they are skipped.
function previewCard(r, totals) {
  const who = r.name || r.to || r.address || (r.contact_id ? `contact #${r.contact_id}` : "—");
  const head = el(
    "div",
    { class: "pc-head" },
    avatar(who),
    el(
      "span",
      { class: "pc-who" },
      el("b", null, who),
      el(
        "small",
        { class: "muted" },
        r.to || r.address || "",
        r.source_row == null ? "" : ` · CSV row ${r.source_row}`,
      ),
    ),
  );
  if (r.skip)
    return el(
      "li",
      { class: "preview-card skipped", dataset: { skip: r.skip } },
      head,
      el(
        "p",
        { class: "pc-skip" },
        icon("alert-triangle"),
        ` Not sent: ${r.skip.replaceAll("_", " ")}`,
        r.detail ? ` — ${r.detail}` : "",
      ),
    );
  const kind = totals.by_channel[String(r.channel_id)]?.kind;
  const fallback = (r.why || "").startsWith("fallback:");
  const how = r.kind === "template" ? "Template" : fallback ? "Fallback" : "Text";
  return el(
    "li",
    { class: "preview-card", dataset: { kind: r.kind || "", fallback: fallback ? "1" : "0" } },
    head,
    el(
      "div",
      { class: "pc-via" },
      channelIcon(kind, r.channel),
      el("span", { class: "pc-channel" }, r.channel),
      el("span", { class: `pc-how pc-${how.toLowerCase()}` }, how),
    ),
    el("p", { class: "pc-bubble" }, r.content || ""),
    el(
      "small",
      { class: "muted pc-foot" },
      r.why || "",
      r.sms_segments ? ` · ${r.sms_segments} × ${r.sms_encoding}` : "",
      r.cost ? ` · ${money(r.cost)}` : "",
    ),
  );
}

function tile(k, v, id) {
  return el(
    "div",
    { class: "tile", id: id || null },
    el("span", { class: "v" }, String(v)),
    el("span", { class: "k" }, k),
  );
}

// "0.04740" → "0.0474": the database's scale is not the figure's precision.
const money = (s) =>
  s == null
    ? "—"
    : String(s)
        .replace(/(\.\d*?)0+$/, "$1")
        .replace(/\.$/, "");
const pct = (x) => (x == null ? "—" : `${Math.round(x * 1000) / 10}%`);

async function reportBlock(id, scope) {
  const r = await api(`/campaigns/${id}/report`);
  // The progress and counts line show the same answer as the per-channel table below.
  const p = scope.querySelector("#c-progress");
  if (p) p.replaceChildren(progressBar(r.counts, true));
  const line = scope.querySelector("#c-counts");
  if (line) line.replaceChildren(countsLine(r.counts, r.fallbacks));
  const channels = Object.values(r.per_channel);
  return el(
    "section",
    { id: "report" },
    el("h2", null, "Report"),
    el(
      "div",
      { class: "tiles" },
      tile("Delivery rate", pct(r.delivery_rate), "r-delivery"),
      tile("Read rate", pct(r.read_rate), "r-read"),
      tile("Replies", r.replies, "r-replies"),
      tile("Opt-outs", r.opt_outs, "r-optouts"),
      tile("Fallbacks", r.fallbacks, "r-fallbacks"),
      tile("Estimated cost", money(r.cost), "r-cost"),
    ),
    el("h2", null, "Per channel"),
    channels.length
      ? grid(
          "report-channels",
          ["Channel", ...STATES.slice(1), "total"],
          channels.map((ch) =>
            row(null, ch.name || "no channel yet", ...STATES.slice(1).map((s) => String(ch[s] || 0)), String(ch.total)),
          ),
        )
      : el("p", { class: "muted" }, "Nothing sent yet."),
    el("h2", null, "Failures and skips by reason"),
    r.failures.length
      ? grid(
          "report-failures",
          ["State", "Reason", "Recipients"],
          r.failures.map((f) => row(null, f.state, f.reason || "—", String(f.count))),
        )
      : el("p", { class: "muted", id: "no-failures" }, "None."),
    el(
      "p",
      null,
      el(
        "a",
        { href: `/api/v1/campaigns/${id}/recipients.csv`, id: "c-export", download: "" },
        "Download per-recipient CSV",
      ),
    ),
  );
}

let reportTimer = null;
function updateDetail(data) {
  if (
    data.state &&
    root.querySelector("#c-state [data-state]") &&
    root.querySelector("#c-state [data-state]").dataset.state !== data.state
  ) {
    render();
    return;
  }
  // Counts, progress and the per-channel table change together, from the report's one read.
  const box = root.querySelector("#c-report");
  if (box && !reportTimer) {
    const id = view.id;
    reportTimer = setTimeout(async () => {
      reportTimer = null;
      // The agent may have left this campaign meanwhile: no request for a view that is gone.
      if (view?.kind !== "detail" || view.id !== id || !box.isConnected) return;
      try {
        box.replaceChildren(await reportBlock(id, root));
        const o = root.querySelector("#c-outbox");
        if (o) o.replaceChildren(outboxLine(await api(`/campaigns/${id}`)));
      } catch (_e) {
        /* next event retries */
      }
    }, 500);
  }
}

// ---- live ----------------------------------------------------------------------------------
function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/v1/events");
  es.onopen = () => {
    live.classList.add("on");
    live.title = "Live";
    document.body.dataset.live = "1";
  };
  es.onerror = () => {
    live.classList.remove("on");
    live.title = "Reconnecting…";
  };
  es.addEventListener("campaign.updated", (ev) => {
    const data = JSON.parse(ev.data);
    if (!view) return;
    if (view.kind === "list") updateRow(data);
    else if (view.kind === "detail" && view.id === data.id) updateDetail(data);
  });
}

// ---- routing -------------------------------------------------------------------------------
async function render() {
  const hash = location.hash || "#list";
  const gen = ++renders;
  const box = el("div");
  main = box;
  const shown = notice;
  notice = null;
  if (shown?.text) box.append(el("p", { class: shown.error ? "error" : "notice", role: "status" }, shown.text));
  for (const a of document.querySelectorAll("nav.side a"))
    a.setAttribute("aria-current", a.getAttribute("href") === hash ? "page" : "false");
  try {
    const detailId = /^#c\/(\d+)$/.exec(hash);
    const editId = /^#edit\/(\d+)(?:\/(message|preview))?$/.exec(hash);
    if (detailId) await detail(Number(detailId[1]), shown?.csv);
    else if (editId?.[2] === "message") await stepMessage(Number(editId[1]), shown?.csv);
    else if (editId?.[2] === "preview") await stepPreview(Number(editId[1]));
    else if (editId) await stepAudience(Number(editId[1]));
    else if (hash === "#new") await stepAudience(null);
    else await list();
  } catch (e) {
    box.append(el("p", { class: "error" }, e.message));
  }
  if (gen !== renders) return; // a newer render owns the page
  root.replaceChildren(box);
  main = root;
  document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", () => {
  paused = null;
  render();
});
connect();
render();

// "Choose…" beside the contact ids: the Contacts picker fills them.
function pickButton(input, labels) {
  input.setAttribute("aria-label", "Contact ids");
  return el(
    "button",
    {
      type: "button",
      id: "c-pick-contacts",
      onclick: async () => {
        const ids = input.value
          .split(/[\s,]+/)
          .filter(Boolean)
          .map(Number)
          .filter(Number.isInteger);
        const chosen = await pickContacts(ids, labels);
        if (chosen) input.value = chosen.join(", ");
      },
    },
    "Choose…",
  );
}
