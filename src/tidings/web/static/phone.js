// The sandbox customer phone. Everything is set with textContent: customer and agent text
// stays text. Talks to the sandbox's JSON routes (/sandbox/phone/channels|thread|send). A module
// on its own: the phone is the customer's side and shares nothing with the agent pages.
const base = location.pathname.replace(/\/phone\/?$/, "");
const $ = (id) => document.getElementById(id);
const TICK = { sent: "✓", delivered: "✓✓", read: "✓✓", received: "✓✓", failed: "!" };
let lastRendered = "";
let channels = [];
const current = () => channels.find((c) => String(c.id) === $("channel").value);
// A <tag class=className> holding `text` as text.
const node = (tag, className, text) => {
  const n = document.createElement(tag);
  if (className) n.className = className;
  n.textContent = text;
  return n;
};

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
    const opt = node("option", "", `${c.name} (${c.kind})`);
    opt.value = c.id;
    select.appendChild(opt);
  }
  if (!channels.length) select.appendChild(node("option", "", "No sandbox channels — connect one in Settings"));
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

// POSTs `body` as JSON to the phone route `path`: [response, its JSON body or {}].
async function post(path, body) {
  const resp = await fetch(`${base}/phone/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  try {
    return [resp, (await resp.json()) || {}];
  } catch (_e) {
    return [resp, {}]; // not JSON
  }
}

async function send(extra) {
  const [resp, data] = await post("send", {
    channel_id: $("channel").value,
    user: $("user").value.trim(),
    name: $("name").value.trim(),
    ...extra,
  });
  if (!resp.ok) {
    showError(data.error || `Could not send (${resp.status})`);
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
  if (!items.length) thread.appendChild(node("p", "empty", "No messages yet. Say hello!"));
  for (const m of items) {
    const mine = m.direction === "in";
    const loc = m.content && m.type === "location" ? m.content : null;
    const div = node(
      "div",
      `msg ${mine ? "in" : "out"}`,
      loc
        ? `📍 ${loc.name ? `${loc.name} · ` : ""}${loc.latitude}, ${loc.longitude}`
        : m.type && m.type !== "text" && !m.text
          ? `[${m.type}${m.content?.filename ? `: ${m.content.filename}` : ""}]`
          : (m.text ?? `[${m.type || "message"}]`),
    );
    const when = m.at ? new Date(m.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    const meta = node("div", "meta", `${(mine ? "you" : "business") + (when ? ` · ${when}` : "")} `);
    if (mine && m.status) meta.appendChild(node("span", `tick-${m.status}`, TICK[m.status] || ""));
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
  const [resp, data] = await post("age", { channel_id: $("channel").value, user: $("user").value.trim() });
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
