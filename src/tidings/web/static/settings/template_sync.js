// Settings → Templates: "Sync templates" per channel whose provider keeps templates (WhatsApp):
// fetches them now instead of waiting for the periodic sync or a status webhook.
import { api, el } from "../ui.js";

export async function syncButtons(done) {
  const [channels, kinds] = await Promise.all([api("/channels"), api("/admin/channel_kinds")]);
  const capable = new Set(kinds.filter((k) => k.capabilities.supports_templates).map((k) => k.kind));
  const out = el("p", { id: "sync-result", role: "status", class: "muted" });
  const buttons = channels
    .filter((c) => c.active && capable.has(c.kind))
    .map((c) =>
      el(
        "button",
        {
          type: "button",
          class: "sync-templates",
          dataset: { id: c.id },
          onclick: async () => {
            out.className = "muted";
            out.textContent = `Syncing ${c.name}…`;
            try {
              const r = await api(`/channels/${c.id}/templates/sync`, { method: "POST" });
              await done(
                `${c.name}: ${r.total} templates (${r.created} new, ${r.updated} changed, ${r.removed} removed).`,
              );
            } catch (e) {
              out.className = "error";
              out.textContent = `${c.name}: ${e.message}`;
            }
          },
        },
        `Sync templates: ${c.name}`,
      ),
    );
  return buttons.length ? el("div", { class: "row-actions" }, ...buttons, out) : null;
}
