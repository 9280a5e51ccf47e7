// Web chat: one session per browser, replies and buttons, pushed events by polling. No framework.
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const locate = document.getElementById("locate");
  const params = new URLSearchParams(location.search);
  const storageKey = "pontibot.session";
  let sessionId = localStorage.getItem(storageKey);
  if (!sessionId) {
    sessionId = "web-" + randomId();
    localStorage.setItem(storageKey, sessionId);
  }
  let lastEvent = Number(localStorage.getItem(storageKey + ".after") || 0);

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function linkify(node, text) {
    const parts = text.split(/(https?:\/\/[^\s]+)/g);
    for (const part of parts) {
      if (/^https?:\/\//.test(part)) {
        const a = document.createElement("a");
        a.href = part; a.textContent = part; a.target = "_blank"; a.rel = "noopener";
        node.appendChild(a);
      } else if (part) {
        node.appendChild(document.createTextNode(part));
      }
    }
  }

  function addMessage(text, who, extra) {
    const div = document.createElement("div");
    div.className = "msg " + who + (extra ? " " + extra : "");
    linkify(div, text);
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function addReply(reply, extra) {
    addMessage(reply.text, "bot", extra);
    if (reply.venue) {
      const v = reply.venue;
      addMessage("📍 " + v.title + "\n" + v.address + "\nhttps://www.google.com/maps?q=" + v.lat + "," + v.lon, "bot");
    }
    if (reply.buttons && reply.buttons.length) {
      const row = document.createElement("div");
      row.className = "buttons";
      for (const b of reply.buttons) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = b.title;
        btn.addEventListener("click", () => send({ text: b.title, payload: b.payload }));
        row.appendChild(btn);
      }
      log.appendChild(row);
      log.scrollTop = log.scrollHeight;
    }
  }

  async function post(body, attempt) {
    const res = await fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status === 503 && attempt < 3) {
      await new Promise((r) => setTimeout(r, 1500 * (attempt + 1)));
      return post(body, attempt + 1);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || "Gagal mengirim pesan.");
    return data;
  }

  async function send(message) {
    const shown = message.text || (message.location ? "📍 Lokasi dibagikan" : "");
    if (shown) addMessage(shown, "me");
    const body = Object.assign({ session_id: sessionId, message_id: "m-" + randomId() }, message);
    if (!body.text) delete body.text;
    try {
      const data = await post(body, 0);
      for (const reply of data.replies || []) addReply(reply);
    } catch (err) {
      addMessage(err.message + " Silakan coba lagi.", "bot", "error");
    }
  }

  async function poll() {
    try {
      const res = await fetch("/api/chat/" + encodeURIComponent(sessionId) + "/events?after=" + lastEvent);
      if (res.ok) {
        const data = await res.json();
        for (const ev of data.events || []) {
          addReply({ text: ev.text, buttons: ev.buttons }, "push");
          lastEvent = Math.max(lastEvent, ev.id);
          localStorage.setItem(storageKey + ".after", String(lastEvent));
        }
      }
    } catch (_) { /* offline for a moment: try again next tick */ }
    setTimeout(poll, document.hidden ? 10000 : 3000);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text });
  });

  locate.addEventListener("click", () => {
    if (!navigator.geolocation) {
      addMessage("Browser ini tidak bisa membagikan lokasi. Ketik nama jalan atau kelurahan saja ya.", "bot");
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => send({ location: { lat: pos.coords.latitude, lon: pos.coords.longitude } }),
      () => addMessage("Lokasi tidak bisa diambil. Ketik nama jalan atau kelurahan saja ya.", "bot"),
      { enableHighAccuracy: true, timeout: 15000 }
    );
  });

  const first = params.get("text") || "halo";
  if (!localStorage.getItem(storageKey + ".greeted")) {
    localStorage.setItem(storageKey + ".greeted", "1");
    send({ text: first });
  } else {
    addMessage("Selamat datang kembali, Kak! Ketik \"menu\" untuk melihat layanan.", "bot");
  }
  poll();
})();
