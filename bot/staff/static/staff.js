// Konsol Petugas: gentle auto-refresh (never while typing), Ctrl+Enter sends, transcript scrolled to the end.
(function () {
  "use strict";
  // On a phone the tabs scroll sideways: keep the current page's tab in view.
  const current = document.querySelector(".tabs [aria-current=page]");
  if (current && current.parentElement.scrollWidth > current.parentElement.clientWidth) {
    current.parentElement.scrollLeft = current.offsetLeft - 16;
  }

  const transcript = document.getElementById("transcript");
  if (transcript) transcript.scrollTop = transcript.scrollHeight;

  const reply = document.getElementById("reply-text");
  if (reply) {
    reply.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && reply.value.trim()) {
        event.preventDefault();
        reply.form.requestSubmit();
      }
    });
  }

  // Forms are sent once: a double tap on a slow phone must not send a reply twice.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  });

  const seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    setInterval(function () {
      const active = document.activeElement;
      const typing = active && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName);
      const drafts = Array.from(document.querySelectorAll("textarea")).some(function (t) { return t.value.trim(); });
      const open = document.querySelector("details[open]");
      if (!typing && !drafts && !open && !document.hidden) location.reload();
    }, seconds * 1000);
  }
})();
