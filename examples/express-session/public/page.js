// The browser side: no token anywhere. The session cookie this app set at sign-in travels to the
// hub (`withCredentials`), the hub asks the app who it is (the session hook), and the stream
// carries that user's events and the topics the app allowed.
import { createClient } from '@herald/client';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const { user, hubUrl, topic } = await (await fetch('/api/me')).json();

$('signed-in').hidden = user === null;
$('signed-out').hidden = user !== null;
if (user !== null) $('user').textContent = user;

// Opened even when signed out, to show what the hub answers then (401, from the app's hook).
const client = createClient({
  url: `${hubUrl}/events`,
  topics: [topic],
  withCredentials: true, // send the session cookie to the hub (fetch `credentials: 'include'`)
});
window.heraldClient = client;

client.onStateChange((s) => {
  $('status').textContent = s.state;
  $('status').className = `status ${s.state}`;
  $('error').textContent = s.error ? `${s.error.code}${s.error.status ? ` (${s.error.status})` : ''}: ${s.error.message}` : '';
});

const add = (list, text) => {
  const li = document.createElement('li');
  li.textContent = text;
  li.dataset.testid = `${list}-item`;
  $(list).prepend(li);
};
client.on('notification', (n) => add('notifications', n.title));
client.on('news', (n) => add('news', `${n.headline} — ${n.by}`));

$('notify-me').addEventListener('click', () => {
  void fetch('/api/notify-me', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: `Hello ${user}` }),
  });
});
$('news-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('headline');
  void fetch('/api/news', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ headline: input.value }),
  });
  input.value = '';
});
