// wf console: live refresh and confirmations, nothing else. An element with
// data-refresh="ms" and data-src="url" fetches its fragment again every ms and swaps it
// in, keeping open <details> open; it stops once the fragment holds [data-final].
"use strict";

function refresh(el) {
  const every = Number(el.dataset.refresh) || 2000;
  let last = null;
  const tick = async () => {
    if (el.querySelector("[data-final]")) return;
    try {
      const res = await fetch(el.dataset.src, { cache: "no-store" });
      if (res.ok) {
        const text = await res.text();
        if (text !== last) {
          const open = [...el.querySelectorAll("details[open]")].map((d) => d.id);
          el.innerHTML = text;
          last = text;
          for (const id of open) {
            const d = document.getElementById(id);
            if (d) d.open = true;
          }
          // A run page reloads once its run ends, so the actions match it again.
          if (el.dataset.reloadWhenFinal === "true" && el.querySelector("[data-final]")) {
            location.reload();
            return;
          }
        }
      }
    } catch (_) {
      // The console may be restarting; try again next tick.
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

document.querySelectorAll("[data-refresh]").forEach(refresh);

document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// A location hash naming a step opens its details.
function openHashed() {
  const el = location.hash && document.getElementById(location.hash.slice(1));
  if (el && el.tagName === "DETAILS") el.open = true;
}
window.addEventListener("hashchange", openHashed);
openHashed();
