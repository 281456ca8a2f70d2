// Herald developer console. Talks to this hub only: GET /console/api/snapshot for what is
// happening, POST /publish for test events, both with the publish key as a bearer credential.
// The key never appears in the page source: it is typed in, or handed over once in the URL
// fragment (#key=..., which browsers never send to servers), and kept in sessionStorage.

const STORAGE_KEY = "herald.console.key";
const REFRESH_MS = 1000;
const MAX_ROWS = 500;

const $ = (id) => document.getElementById(id);
let key = null;
let lastId = "";
let timer = null;

function takeKeyFromFragment() {
  const match = /^#key=(.+)$/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(STORAGE_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showLogin(message) {
  clearTimeout(timer);
  key = null;
  $("console").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("not connected", "");
  $("key").focus();
}

function setStatus(text, cls) {
  $("status").textContent = text;
  $("status").className = cls;
}

async function refresh() {
  const url = "/console/api/snapshot" + (lastId ? "?after=" + encodeURIComponent(lastId) : "");
  try {
    const response = await fetch(url, { headers: { Authorization: "Bearer " + key } });
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(STORAGE_KEY);
      showLogin((await errorMessage(response)) + " Check the publish key.");
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    render(await response.json());
    setStatus("live", "live");
  } catch (error) {
    setStatus("hub unreachable: " + error.message, "down");
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.message || response.statusText;
  } catch {
    return response.status + " " + response.statusText;
  }
}

function render(snapshot) {
  $("connections").textContent = snapshot.connections;
  $("users").textContent = snapshot.users;
  $("topics").textContent = snapshot.topics;
  $("anonymous").textContent = snapshot.anonymous;
  $("last-id").textContent = snapshot.last_event_id;
  fillCounts($("top-users"), snapshot.top_users);
  fillCounts($("top-topics"), snapshot.top_topics);
  const tbody = $("events");
  for (const event of snapshot.events) {
    const to = event.users.map((u) => "@" + u).concat(event.topics);
    const time = event.published_us ? new Date(event.published_us / 1000).toLocaleTimeString() : "";
    const row = tr([time, event.id, event.event, to.length ? to.join(", ") : "everyone",
      event.data + (event.truncated ? " …" : "")]);
    row.dataset.event = event.event;
    tbody.prepend(row);
    lastId = event.id;
  }
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
}

function fillCounts(tbody, counts) {
  tbody.replaceChildren(...counts.map((c) => tr([c.name, String(c.streams)])));
}

// textContent only: event data and names come from publishers and must never become markup.
function tr(cells) {
  const row = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }
  return row;
}

async function publish(event) {
  event.preventDefault();
  const result = $("publish-result");
  let data;
  try {
    data = JSON.parse($("data").value);
  } catch (error) {
    result.className = "error";
    result.textContent = "Data is not valid JSON: " + error.message;
    return;
  }
  const body = { data };
  const name = $("event").value.trim();
  if (name) body.event = name;
  const kind = $("target-kind").value;
  const target = $("target").value.trim();
  if (kind !== "broadcast") {
    if (!target) {
      result.className = "error";
      result.textContent = "Enter the " + kind + " to send to.";
      return;
    }
    body[kind] = target;
  }
  const response = await fetch("/publish", {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.ok) {
    const answer = await response.json();
    result.className = "ok";
    result.textContent = "Published " + answer.id;
  } else {
    result.className = "error";
    result.textContent = response.status + ": " + (await errorMessage(response));
  }
}

function start(withKey) {
  key = withKey;
  lastId = "";
  $("events").replaceChildren();
  $("login").hidden = true;
  $("console").hidden = false;
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  takeKeyFromFragment();
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("key").value;
    sessionStorage.setItem(STORAGE_KEY, typed);
    $("key").value = "";
    start(typed);
  });
  $("publish-form").addEventListener("submit", publish);
  $("target-kind").addEventListener("change", () => {
    $("target-label").hidden = $("target-kind").value === "broadcast";
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE_KEY);
    showLogin("");
  });
  const stored = sessionStorage.getItem(STORAGE_KEY);
  if (stored) start(stored);
  else showLogin("");
});
