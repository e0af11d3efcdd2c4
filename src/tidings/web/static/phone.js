// The sandbox customer phone. Everything is set with textContent: customer and agent text
// stays text. Talks to the sandbox's JSON routes (/sandbox/phone/channels|thread|send).
"use strict";
(() => {
  const base = location.pathname.replace(/\/phone\/?$/, "");
  const $ = (id) => document.getElementById(id);
  const TICK = { sent: "✓", delivered: "✓✓", read: "✓✓", received: "✓✓", failed: "!" };
  let lastRendered = "";

  async function loadChannels() {
    const channels = await (await fetch(base + "/phone/channels")).json();
    const select = $("channel");
    select.replaceChildren();
    for (const c of channels) {
      const opt = document.createElement("option");
      opt.value = c.id;
      opt.textContent = c.name + " (" + c.kind + ")";
      select.appendChild(opt);
    }
    if (!channels.length) {
      const opt = document.createElement("option");
      opt.textContent = "No sandbox channels — connect one in Settings";
      select.appendChild(opt);
    }
    refresh();
  }

  async function refresh() {
    const channel = $("channel").value, user = $("user").value.trim();
    if (!channel || !user) return;
    const resp = await fetch(base + "/phone/thread?" + new URLSearchParams({ channel_id: channel, user }));
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
      div.className = "msg " + (mine ? "in" : "out");
      div.textContent = m.text ?? "[" + (m.type || "message") + "]";
      const meta = document.createElement("div");
      meta.className = "meta";
      const when = m.at ? new Date(m.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
      meta.textContent = (mine ? "you" : "business") + (when ? " · " + when : "") + " ";
      if (mine && m.status) {
        const tick = document.createElement("span");
        tick.className = "tick-" + m.status;
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
    await fetch(base + "/phone/send", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel_id: $("channel").value, user: $("user").value.trim(), name: $("name").value.trim(), text }),
    });
    refresh();
  });
  $("channel").addEventListener("change", () => { lastRendered = ""; refresh(); });
  $("user").addEventListener("change", () => { lastRendered = ""; refresh(); });
  loadChannels();
  setInterval(refresh, 1000);
})();
