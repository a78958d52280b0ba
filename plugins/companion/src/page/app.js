// The phone page: state arrives as Server-Sent Events ("state"); actions are small JSON POSTs
// to this same link. No build step, no libraries.
"use strict";
const EMOJI = [["fire", "🔥"], ["heart", "❤️"], ["thumbs_down", "👎"], ["mind_blown", "🤯"], ["sleeping", "😴"], ["party", "🥳"]];
const $ = (id) => document.getElementById(id);
let state = null, receivedAt = 0, sentMs = 0;

function store(key, value) { try { value === null ? localStorage.removeItem(key) : localStorage.setItem(key, value); } catch (_) {} }
function load(key) { try { return localStorage.getItem(key); } catch (_) { return null; } }

function toast(text) {
  const t = $("toast"); t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  let data = {};
  try { data = await response.json(); } catch (_) {}
  if (!response.ok) {
    if (response.status === 403 && data.error === "say your name first") { store("whatnext.phone", null); showNameForm(); }
    throw new Error(data.error || (response.status === 429 ? "slow down a little" : response.status === 404 ? "this link no longer works: scan the new code" : "something went wrong"));
  }
  return data;
}

function mmss(ms) { const s = Math.max(0, Math.floor(ms / 1000)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); }

function item(parent, title, by, button) {
  const li = document.createElement("li");
  const what = document.createElement("div"); what.className = "what";
  const t = document.createElement("div"); t.className = "t"; t.textContent = title;
  const b = document.createElement("div"); b.className = "by"; b.textContent = by;
  what.append(t, b); li.append(what);
  if (button) li.append(button);
  parent.append(li);
  return li;
}

function render() {
  if (!state) return;
  $("session").textContent = state.session;
  document.title = state.session + " · whatnext";
  const now = state.now;
  $("now-title").textContent = now ? now.title : "Nothing playing";
  $("now-meta").textContent = now ? [now.artist, "added by " + now.added_by].filter(Boolean).join(" · ") : "";
  const line = state.reactions.filter((r) => now && r.track_id === now.track_id).slice(-12).map((r) => r.glyph).join("");
  $("now-reactions").textContent = line;
  const next = $("up-next"); next.replaceChildren();
  for (const t of state.up_next) item(next, t.title, [t.artist, "added by " + t.added_by].filter(Boolean).join(" · "));
  $("next-count").textContent = state.up_next_total ? "(" + state.up_next_total + ")" : "";
  if (!state.up_next.length) item(next, "Nothing queued yet", "Search below to add a track");
  const people = $("people"); people.replaceChildren();
  for (const p of state.people) {
    const li = document.createElement("li"); if (!p.online) li.className = "off";
    li.textContent = p.name;
    if (p.role !== "guest") { const r = document.createElement("span"); r.className = "role"; r.textContent = p.role; li.append(r); }
    people.append(li);
  }
  tick();
}

// The progress bar follows the host's clock: its position when sent, plus the time since.
function tick() {
  if (!state || !state.now) { $("progress").style.width = "0"; return; }
  const p = state.playback;
  let position = p.position_ms;
  if (p.state === "playing") position += (sentMs - p.at_ms) + (Date.now() - receivedAt);
  const duration = state.now.duration_ms || 1;
  $("progress").style.width = Math.min(100, 100 * position / duration) + "%";
  $("now-meta").title = mmss(position) + " / " + mmss(duration);
}
setInterval(tick, 500);

function connect() {
  const live = $("live");
  const events = new EventSource("events");
  events.addEventListener("state", (e) => {
    const message = JSON.parse(e.data);
    receivedAt = Date.now(); sentMs = message.sent_ms; state = message.state;
    live.dataset.state = "live"; live.textContent = "live";
    render();
  });
  events.onerror = () => {
    // EventSource reconnects by itself; a closed one means the link is gone.
    if (events.readyState === EventSource.CLOSED) { live.dataset.state = "gone"; live.textContent = "link expired"; setTimeout(connect, 5000); }
    else { live.dataset.state = "lost"; live.textContent = "reconnecting…"; }
  };
}

function showNameForm() {
  $("name-form").hidden = false;
  $("name-input").value = load("whatnext.name") || "";
  $("me").replaceChildren();
}

function showMe() {
  const name = load("whatnext.name");
  $("me").replaceChildren();
  if (!name) return;
  $("me").append("You are " + name + " (phone) · ");
  const change = document.createElement("button"); change.textContent = "change name"; change.onclick = showNameForm;
  $("me").append(change);
}

async function hello(name) {
  const answer = await post("hello", { name, phone: load("whatnext.phone") });
  store("whatnext.phone", answer.phone); store("whatnext.name", answer.name);
  $("name-form").hidden = true; showMe();
}

async function needPhone() {
  if (load("whatnext.phone")) return true;
  showNameForm(); toast("Say your name first"); return false;
}

$("hello").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await hello($("name-input").value); } catch (err) { toast(err.message); }
});

$("search").addEventListener("submit", async (e) => {
  e.preventDefault();
  const results = $("results"); results.replaceChildren();
  try {
    const answer = await post("search", { q: $("search-input").value });
    if (!answer.tracks.length) item(results, "No tracks found", "Try other words");
    for (const t of answer.tracks) {
      const add = document.createElement("button"); add.textContent = "Add"; add.className = "add";
      add.onclick = async () => {
        if (!(await needPhone())) return;
        add.disabled = true;
        try { await post("add", { phone: load("whatnext.phone"), track_id: t.track_id }); add.textContent = "Added"; }
        catch (err) { add.disabled = false; toast(err.message); }
      };
      item(results, t.title, [t.artist, mmss(t.duration_ms)].filter(Boolean).join(" · "), add);
    }
  } catch (err) { toast(err.message); }
});

for (const [name, glyph] of EMOJI) {
  const b = document.createElement("button"); b.textContent = glyph; b.dataset.emoji = name; b.title = name.replace("_", " ");
  b.onclick = async () => {
    if (!(await needPhone())) return;
    try { await post("react", { phone: load("whatnext.phone"), emoji: name }); } catch (err) { toast(err.message); }
  };
  $("emoji-row").append(b);
}

// A remembered name joins again by itself (the host may have restarted its page).
const remembered = load("whatnext.name");
if (remembered) hello(remembered).catch(() => showNameForm()); else showNameForm();
connect();
