// Web chat: one session per browser; replies with buttons; location and photo; pushed messages by
// polling; Indonesian/English labels from the server's text catalogue, following the conversation's
// language as each answer reports it. No framework, nothing external.
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const locate = document.getElementById("locate");
  const photo = document.getElementById("photo");
  const langButton = document.getElementById("lang");
  const catalogue = JSON.parse(document.getElementById("texts").textContent);
  const params = new URLSearchParams(location.search);
  const storageKey = "pontibot.session";
  const MAX_SIDE = 1600;

  let lang = localStorage.getItem(storageKey + ".lang") || document.documentElement.lang || "id";
  let lastEvent = Number(localStorage.getItem(storageKey + ".after") || 0);
  let sessionId = localStorage.getItem(storageKey) || newSession();

  function t(key) { return (catalogue[lang] || catalogue.id)[key] || catalogue.id[key] || key; }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t("title");
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-t-aria]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.tAria));
      if (el.title) el.title = t(el.dataset.tAria);
    });
    document.querySelectorAll("[data-t-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.tPlaceholder); });
  }

  // The bot answers in the language of the resident's messages (or the one they chose): the page's
  // labels follow what each answer reports.
  function followLanguage(code) {
    if ((code === "id" || code === "en") && code !== lang) {
      lang = code;
      localStorage.setItem(storageKey + ".lang", lang);
      applyLanguage();
    }
  }

  // The session id is the conversation's only credential: 128 random bits as 32 hex digits.
  // crypto.getRandomValues works on plain-HTTP booth Wi-Fi too (randomUUID needs a secure context).
  function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function newSession() {
    const id = (params.get("source") === "cfd" ? "cfd-" : "web-") + randomId();
    localStorage.setItem(storageKey, id);
    localStorage.removeItem(storageKey + ".after");
    lastEvent = 0;
    return id;
  }

  function failureText(err) {
    if (err.status === 429) {
      return t("too_many_sessions").replace("{seconds}", String(err.retryAfter || 60));
    }
    return t("send_failed");
  }

  function linkify(node, text) {
    for (const part of text.split(/(https?:\/\/[^\s]+)/g)) {
      if (/^https?:\/\//.test(part)) {
        const a = document.createElement("a");
        a.href = part; a.textContent = part; a.target = "_blank"; a.rel = "noopener";
        node.appendChild(a);
      } else if (part) {
        node.appendChild(document.createTextNode(part));
      }
    }
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function addMessage(text, who, extra) {
    const div = document.createElement("div");
    div.className = "msg " + who + (extra ? " " + extra : "");
    linkify(div, text);
    log.appendChild(div);
    scrollDown();
    return div;
  }

  function addReply(reply, extra) {
    const bubble = addMessage(reply.text, "bot", extra);
    bubble.dataset.kind = extra || "reply";
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
      scrollDown();
    }
  }

  async function request(url, options, attempt) {
    const res = await fetch(url, options);
    if (res.status === 503 && attempt < 3) {
      await new Promise((r) => setTimeout(r, 1500 * (attempt + 1)));
      return request(url, options, attempt + 1);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((data.error && data.error.message) || t("send_failed"));
      err.status = res.status;
      err.code = data.error && data.error.code;
      err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
      throw err;
    }
    return data;
  }

  async function send(message, retried) {
    const shown = message.text || (message.location ? t("location_shared") : "");
    if (shown && !retried) addMessage(shown, "me");
    const body = Object.assign({ session_id: sessionId, message_id: "m-" + randomId(), language: lang }, message);
    if (!body.text) delete body.text;
    try {
      const data = await request("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }, 0);
      followLanguage(data.language);
      for (const reply of data.replies || []) addReply(reply);
    } catch (err) {
      if (err.code === "weak_session_id" && !retried) {
        // An id an older page made without enough randomness, whose conversation is gone: start afresh.
        sessionId = newSession();
        return send(message, true);
      }
      addMessage(failureText(err), "bot", "error");
    }
  }

  function downscale(file) {
    // Phones take 4-12 MP photos; a 1600 px JPEG is plenty for a pothole and cheap on mobile data.
    return new Promise((resolve) => {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => {
        const scale = Math.min(1, MAX_SIDE / Math.max(img.width, img.height));
        if (scale === 1 && file.size < 1500000) { URL.revokeObjectURL(url); resolve(file); return; }
        const canvas = document.createElement("canvas");
        canvas.width = Math.round(img.width * scale);
        canvas.height = Math.round(img.height * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        canvas.toBlob((blob) => resolve(blob || file), "image/jpeg", 0.82);
      };
      img.onerror = () => { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  }

  async function sendPhoto(file) {
    if (!file.type.startsWith("image/")) { addMessage(t("photo_not_image"), "bot", "error"); return; }
    const bubble = addMessage("", "me", "pending");
    const preview = document.createElement("img");
    preview.alt = t("photo_sent");
    preview.src = URL.createObjectURL(file);
    bubble.appendChild(preview);
    const blob = await downscale(file);
    const formData = new FormData();
    formData.append("session_id", sessionId);
    formData.append("message_id", "p-" + randomId());
    formData.append("file", blob, "photo.jpg");
    try {
      const data = await request("/api/chat/photo", { method: "POST", body: formData }, 0);
      bubble.classList.remove("pending");
      followLanguage(data.language);
      for (const reply of data.replies || []) addReply(reply);
    } catch (err) {
      bubble.classList.remove("pending");
      addMessage(err.status === 413 ? t("photo_too_big") : err.status === 415 ? t("photo_not_image") : failureText(err), "bot", "error");
    }
  }

  async function poll() {
    try {
      const res = await fetch("/api/chat/" + encodeURIComponent(sessionId) + "/events?after=" + lastEvent);
      if (res.ok) {
        const data = await res.json();
        for (const ev of data.events || []) {
          addReply({ text: ev.text, buttons: ev.buttons }, ev.kind === "staff" ? "push staff" : "push");
          lastEvent = Math.max(lastEvent, ev.id);
          localStorage.setItem(storageKey + ".after", String(lastEvent));
        }
      }
    } catch (_) { /* offline for a moment: the next tick tries again */ }
    setTimeout(poll, document.hidden ? 10000 : 2000);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text });
  });

  locate.addEventListener("click", () => {
    if (!navigator.geolocation) { addMessage(t("no_geolocation"), "bot"); return; }
    navigator.geolocation.getCurrentPosition(
      (pos) => send({ location: { lat: pos.coords.latitude, lon: pos.coords.longitude } }),
      () => addMessage(t("geolocation_failed"), "bot"),
      { enableHighAccuracy: true, timeout: 15000 }
    );
  });

  photo.addEventListener("change", () => {
    const file = photo.files && photo.files[0];
    photo.value = "";
    if (file) sendPhoto(file);
  });

  langButton.addEventListener("click", () => {
    lang = lang === "id" ? "en" : "id";
    localStorage.setItem(storageKey + ".lang", lang);
    applyLanguage();
    send({ payload: '/change_language{"language": "' + lang + '"}' });
  });

  applyLanguage();
  if (!localStorage.getItem(storageKey + ".greeted")) {
    localStorage.setItem(storageKey + ".greeted", "1");
    send({ text: params.get("text") || (lang === "en" ? "hello" : "halo") });
  } else {
    addMessage(t("welcome_back"), "bot");
  }
  poll();
})();
