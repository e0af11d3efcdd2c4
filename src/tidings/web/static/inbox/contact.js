// The contact panel: who the customer is (identities, claimed details, consent), possible
// duplicates with merge and undo, and earlier conversations. Loading it also refreshes the
// composer's reply options, which come with the same answer.
import { reported } from "../forms.js";
import { $, api, avatar, channelIcon, el, fact, listOr } from "../ui.js";
import { renderRoutes } from "./composer.js";
import { S } from "./state.js";

// ---- contact panel and channel picker ----------------------------------------------------
export async function loadContext() {
  const id = S.current;
  const ctx = await api(`/ui/conversations/${id}/context`);
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
    el(
      "div",
      { class: "contact-head" },
      avatar(
        contact.display_name,
        /^https?:\/\//.test(contact.attributes?.picture_url || "") ? `/api/v1/contacts/${contact.id}/picture` : null,
        "lg",
      ),
      el("h2", { class: "contact-name" }, contact.display_name),
    ),
    el(
      "dl",
      { class: "facts" },
      ...(contact.phone ? fact("Phone", contact.phone) : []),
      // Typed by the customer (API channel), never verified: shown as a claim, never linking.
      ...(contact.claimed_phone
        ? fact("Phone (claimed)", contact.claimed_phone, {
            class: "muted",
            title: "Given by the customer, not verified by a provider",
          })
        : []),
      ...(contact.email ? fact("Email", contact.email) : []),
      ...attrs.flatMap(([k, v]) => fact(k, typeof v === "string" ? v : JSON.stringify(v))),
    ),
    el("h3", null, "Identities"),
    el(
      "ul",
      { class: "idents" },
      ...contact.identities.map((i) =>
        el(
          "li",
          null,
          channelIcon(i.channel_kind),
          " ",
          el("span", { class: "addr" }, i.address),
          i.display_name ? el("span", { class: "muted" }, ` · ${i.display_name}`) : null,
        ),
      ),
    ),
    el("h3", null, "Consent"),
    listOr(
      { class: "consents" },
      consents.map((c) =>
        el(
          "li",
          { class: `consent-${c.status}` },
          `${c.channel_kind} · ${c.purpose}: ${c.status.replace("_", " ")}`,
          el("span", { class: "muted" }, ` (${c.source})`),
        ),
      ),
      "No consent recorded.",
    ),
    ...mergeBlock(),
    el("h3", null, "Previous conversations"),
    listOr(
      { class: "prev" },
      prev.map((p) =>
        el(
          "li",
          null,
          el("a", { href: `#c/${p.id}` }, `#${p.id} · ${p.status}`),
          el("div", { class: "muted preview" }, p.last_message_preview || ""),
        ),
      ),
      "None.",
    ),
  );
}

function mergeBlock() {
  const out = [];
  if (S.lastMerge && S.lastMerge.kept === S.context.contact.id) {
    out.push(
      el(
        "p",
        { class: "merged", id: "merged" },
        `Merged ${S.lastMerge.name}. `,
        el("button", { type: "button", class: "link", id: "undo-merge", onclick: undoMerge }, "Undo"),
      ),
    );
  }
  const dups = S.context.merge_suggestions || [];
  if (!dups.length) return out;
  out.push(
    el("h3", null, "Possible duplicates"),
    el(
      "ul",
      { class: "dups" },
      ...dups.map((d) =>
        el(
          "li",
          { dataset: { id: d.id } },
          el("strong", null, d.display_name),
          " ",
          el(
            "span",
            { class: "muted" },
            `${d.reason} · ${d.identities.map((i) => `${i.channel_kind} ${i.address}`).join(", ")}`,
          ),
          " ",
          el("button", { type: "button", class: "merge", onclick: () => merge(d) }, "Merge"),
        ),
      ),
    ),
  );
  return out;
}

async function merge(d) {
  await reported($("c-error"), async () => {
    const res = await api(`/ui/contacts/${S.context.contact.id}/merge`, { method: "POST", json: { merge_id: d.id } });
    S.lastMerge = { id: res.merge_id, kept: res.kept, name: d.display_name };
    await loadContext();
  });
}

async function undoMerge() {
  await reported($("c-error"), async () => {
    await api(`/ui/contact_merges/${S.lastMerge.id}/undo`, { method: "POST" });
    S.lastMerge = null;
    await loadContext();
  });
}

export function wireContact() {
  // Tablets open the contact panel as a drawer.
  const contactDrawer = (open) => {
    document.querySelector(".panes").classList.toggle("contact-open", open);
    $("t-contact").setAttribute("aria-expanded", String(open));
  };
  $("t-contact").addEventListener("click", () =>
    contactDrawer(!document.querySelector(".panes").classList.contains("contact-open")),
  );
  $("contact-close").addEventListener("click", () => contactDrawer(false));
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && document.querySelector(".panes.contact-open")) contactDrawer(false);
  });
}
