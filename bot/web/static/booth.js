// Booth screen: refresh the counters every few seconds without reloading the page.
(function () {
  "use strict";
  const lang = document.documentElement.lang || "id";
  async function refresh() {
    try {
      const res = await fetch("/booth/stats?lang=" + encodeURIComponent(lang), { cache: "no-store" });
      if (res.ok) {
        const s = await res.json();
        for (const key of ["visitors", "conversations", "complaints"]) {
          document.getElementById(key).textContent = String(s[key]);
        }
        const list = document.getElementById("top");
        list.replaceChildren(...s.top_questions.map((q) => {
          const li = document.createElement("li");
          const label = document.createElement("span");
          label.textContent = q.label;
          const count = document.createElement("b");
          count.textContent = String(q.count);
          li.append(label, count);
          return li;
        }));
      }
    } catch (_) { /* the booth Wi-Fi blinked: try again next time */ }
    setTimeout(refresh, 4000);
  }
  setTimeout(refresh, 4000);
})();
