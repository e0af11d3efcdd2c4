// The keyboard-first chooser (the #picker dialog) used for assign, label, team and snooze.
import { $, el } from "../ui.js";

// A small keyboard-first chooser used for assign (a) and label (l).
export function picker(title, items, onChoose, allowNew) {
  const dlg = $("picker");
  $("picker-title").textContent = title;
  const input = $("picker-filter");
  input.value = "";
  let active = 0;
  let shown = items;
  const draw = () => {
    const f = input.value.trim().toLowerCase();
    shown = items.filter((it) => it.label.toLowerCase().includes(f));
    if (allowNew && f && !items.some((it) => it.label.toLowerCase() === f))
      shown = [...shown, { label: input.value.trim(), value: input.value.trim(), isNew: true }];
    active = Math.min(active, Math.max(0, shown.length - 1));
    $("picker-list").replaceChildren(
      ...shown.map((it, i) =>
        el(
          "li",
          {
            class: (i === active ? "active" : "") + (it.on ? " on" : ""),
            onmousedown: (ev) => {
              ev.preventDefault();
              choose(it);
            },
          },
          it.on ? "✓ " : "",
          it.isNew ? `Create “${it.label}”` : it.label,
        ),
      ),
    );
  };
  const choose = (it) => {
    dlg.close();
    onChoose(it);
  };
  input.oninput = () => {
    active = 0;
    draw();
  };
  input.onkeydown = (ev) => {
    if (ev.key === "ArrowDown") {
      active = Math.min(shown.length - 1, active + 1);
      draw();
      ev.preventDefault();
    } else if (ev.key === "ArrowUp") {
      active = Math.max(0, active - 1);
      draw();
      ev.preventDefault();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      if (shown[active]) choose(shown[active]);
    }
  };
  draw();
  dlg.showModal();
  input.focus();
}
