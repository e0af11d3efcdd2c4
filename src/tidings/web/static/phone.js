// The sandbox customer phone. Everything is set with textContent: customer and agent text
// stays text. Talks to the sandbox's JSON routes (/sandbox/phone/channels|thread|send). A module
// on its own: the phone is the customer's side and shares nothing with the agent pages.
const base = location.pathname.replace(/\/phone\/?$/, "");
const $ = (id) => document.getElementById(id);
const TICK = { sent: "✓", delivered: "✓✓", read: "✓✓", received: "✓✓", failed: "!" };
let lastRendered = "";
let channels = [];
const current = () => channels.find((c) => String(c.id) === $("channel").value);

// Also every few seconds: a channel connected, renamed or removed in Settings shows here
// without a reload. The list is rebuilt only when it changed, keeping the chosen channel.
let channelsKey = "";
async function loadChannels() {
  const resp = await fetch(`${base}/phone/channels`);
  if (!resp.ok) return;
  const list = await resp.json();
  const key = JSON.stringify(list);
  if (key === channelsKey) return;
  channelsKey = key;
  channels = list;
  const select = $("channel");
  const chosen = select.value;
  select.replaceChildren();
  for (const c of channels) {
    const opt = document.createElement("option");
    opt.value = c.id;
    opt.textContent = `${c.name} (${c.kind})`;
    select.appendChild(opt);
  }
  if (!channels.length) {
    const opt = document.createElement("option");
    opt.textContent = "No sandbox channels — connect one in Settings";
    select.appendChild(opt);
  }
  if (channels.some((c) => String(c.id) === chosen)) select.value = chosen;
  showTools();
  refresh();
}

// Location and file buttons only where the channel's simulated customer can send them.
function showTools() {
  const can = (current() || { can: [] }).can || [];
  $("attach").hidden = !can.includes("file");
  $("share-location").hidden = !can.includes("location");
  $("file").accept = (current()?.file_types || []).join(",");
}

function showError(text) {
  $("phone-error").textContent = text || "";
  $("phone-error").hidden = !text;
}

async function send(extra) {
  const resp = await fetch(`${base}/phone/send`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      channel_id: $("channel").value,
      user: $("user").value.trim(),
      name: $("name").value.trim(),
      ...extra,
    }),
  });
  if (!resp.ok) {
    let msg = `Could not send (${resp.status})`;
    try {
      msg = (await resp.json()).error || msg;
    } catch (_e) {
      /* not JSON */
    }
    showError(msg);
    return false;
  }
  showError("");
  refresh();
  return true;
}

async function refreshTyping(channel, user) {
  const resp = await fetch(`${base}/phone/typing?${new URLSearchParams({ channel_id: channel, user })}`);
  $("typing").hidden = !(resp.ok && (await resp.json()).typing);
}

async function refresh() {
  const channel = $("channel").value,
    user = $("user").value.trim();
  if (!channel || !user) return;
  refreshTyping(channel, user);
  const resp = await fetch(`${base}/phone/thread?${new URLSearchParams({ channel_id: channel, user })}`);
  if (!resp.ok) return;
  const items = await resp.json();
  const key = JSON.stringify(items);
  if (key === lastRendered) return;
  lastRendered = key;
  const thread = $("thread");
  thread.replaceChildren();
  if (!items.length) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No messages yet. Say hello!";
    thread.appendChild(p);
  }
  for (const m of items) {
    const mine = m.direction === "in";
    const div = document.createElement("div");
    div.className = `msg ${mine ? "in" : "out"}`;
    const loc = m.content && m.type === "location" ? m.content : null;
    div.textContent = loc
      ? `📍 ${loc.name ? `${loc.name} · ` : ""}${loc.latitude}, ${loc.longitude}`
      : m.type && m.type !== "text" && !m.text
        ? `[${m.type}${m.content?.filename ? `: ${m.content.filename}` : ""}]`
        : (m.text ?? `[${m.type || "message"}]`);
    const meta = document.createElement("div");
    meta.className = "meta";
    const when = m.at ? new Date(m.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    meta.textContent = `${(mine ? "you" : "business") + (when ? ` · ${when}` : "")} `;
    if (mine && m.status) {
      const tick = document.createElement("span");
      tick.className = `tick-${m.status}`;
      tick.textContent = TICK[m.status] || "";
      meta.appendChild(tick);
    }
    div.appendChild(meta);
    thread.appendChild(div);
  }
  thread.scrollTop = thread.scrollHeight;
}

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  await send({ text });
});
$("share-location").addEventListener("click", () => {
  // A fixed, clearly fake spot unless the browser shares a real one (never required).
  const fallback = () => send({ location: { latitude: 52.52, longitude: 13.405, name: "Alexanderplatz, Berlin" } });
  if (!navigator.geolocation) {
    fallback();
    return;
  }
  navigator.geolocation.getCurrentPosition(
    (pos) => send({ location: { latitude: pos.coords.latitude, longitude: pos.coords.longitude } }),
    fallback,
    { timeout: 3000 },
  );
});
$("attach").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = async () => {
    const data = String(reader.result).split(",", 2)[1] || "";
    const caption = $("text").value.trim();
    if (await send({ text: caption, file: { mime_type: file.type, filename: file.name, data_b64: data } }))
      $("text").value = "";
    $("file").value = "";
  };
  reader.readAsDataURL(file);
});
$("channel").addEventListener("change", () => {
  lastRendered = "";
  showTools();
  refresh();
});
$("user").addEventListener("change", () => {
  lastRendered = "";
  refresh();
});
$("age-window").addEventListener("click", async () => {
  const resp = await fetch(`${base}/phone/age`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ channel_id: $("channel").value, user: $("user").value.trim() }),
  });
  let data = {};
  try {
    data = await resp.json();
  } catch (_e) {
    /* not JSON */
  }
  if (!resp.ok) {
    showError(data.error || `Could not age the conversation (${resp.status})`);
    return;
  }
  showError("");
  $("age-result").textContent = `Last message now ${data.hours} h old: the business needs a template.`;
});
loadChannels();
setInterval(refresh, 1000);
setInterval(loadChannels, 5000);
