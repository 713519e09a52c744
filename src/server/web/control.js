// Tessera room control page: participants, recording, live stream, layout and a live preview
// of the room's program, all through the REST API with the API key (kept in sessionStorage,
// never logged, never put in a URL the page requests).
'use strict';

const KEY_ITEM = 'tessera-api-key';
const ROOM_POLL_MS = 1000;
const PREVIEW_POLL_MS = 500;

const $ = (id) => document.getElementById(id);
const room = decodeURIComponent(location.pathname.split('/')[2] || '');
const api = (path) => '/v1' + path;
let current = { recording: null, stream: null };
let previewUrl = null;

// A key passed as ?key= is kept for this tab and taken out of the address bar and history.
(function takeKeyFromUrl() {
  const params = new URLSearchParams(location.search);
  const key = params.get('key');
  if (key) {
    sessionStorage.setItem(KEY_ITEM, key);
    params.delete('key');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }
})();

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || '';
}

function say(text) {
  $('message').textContent = text || '';
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { Authorization: 'Bearer ' + apiKey() };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(api(path), init);
  if (!r.ok) {
    let code = 'http_' + r.status;
    let message = r.statusText || ('HTTP ' + r.status);
    try {
      const e = (await r.json()).error;
      code = e.code;
      message = e.message + (e.field ? ' (' + e.field + ')' : '');
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, code, message);
  }
  return r;
}

const json = async (method, path, body) => (await call(method, path, body)).json();
const roomPath = () => '/rooms/' + encodeURIComponent(room);

function trackText(t) {
  return t.source + (t.muted ? ' (muted)' : '');
}

function showParticipants(list) {
  const ul = $('participants');
  ul.replaceChildren(...list.map((p) => {
    const li = document.createElement('li');
    li.dataset.id = p.id;
    if (p.identity) li.dataset.identity = p.identity;
    li.classList.toggle('speaking', p.speaking);
    const who = p.identity && p.identity !== p.name ? p.name + ' (' + p.identity + ')' : p.name;
    const tracks = p.tracks.length ? p.tracks.map(trackText).join(', ') : 'no tracks';
    li.textContent = who + ': ' + tracks + (p.speaking ? ', speaking' : '');
    return li;
  }));
  $('people-status').textContent = list.length
    ? list.length + (list.length === 1 ? ' participant' : ' participants')
    : 'Nobody is in the room.';
}

function showRecording(rec) {
  current.recording = rec;
  const busy = !!rec;
  $('record-start').disabled = busy;
  $('record-stop').disabled = !busy || rec.status === 'stopping';
  $('record-status').textContent = busy
    ? 'Recording ' + rec.id + ': ' + rec.status + ', ' + Math.round(rec.duration_s) + ' s, layout ' + rec.layout
    : 'Not recording.';
  if (busy) $('record-status').dataset.id = rec.id; else delete $('record-status').dataset.id;
}

function showStream(s) {
  current.stream = s;
  const busy = !!s;
  $('stream-start').disabled = busy;
  $('stream-stop').disabled = !busy;
  $('stream-status').textContent = busy
    ? 'Streaming (' + s.id + ', layout ' + s.layout + ') to ' +
      s.destinations.map((d) => d.url + ' (' + d.status + ')').join(', ')
    : 'Not streaming.';
}

async function refreshRoom() {
  try {
    const r = await json('GET', roomPath());
    showParticipants(r.participants);
    showRecording(r.recordings.find((x) => x.status !== 'stopping') || r.recordings[0] || null);
    showStream(r.streams[0] || null);
    $('key-status').textContent = 'Key accepted.';
  } catch (e) {
    if (e.status === 404) {
      showParticipants([]);
      showRecording(null);
      showStream(null);
      $('key-status').textContent = 'Key accepted.';
    } else if (e.status === 401) {
      $('key-status').textContent = 'Enter the API key.';
    } else {
      say(e.message);
    }
  }
}

async function refreshPreview() {
  const img = $('preview');
  try {
    const r = await call('GET', roomPath() + '/preview.jpg');
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    img.src = url;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = url;
    img.dataset.sequence = r.headers.get('X-Preview-Sequence') || '';
    img.dataset.updated = String(Date.now());
    $('preview-status').textContent = 'Live: refreshed twice a second.';
  } catch (e) {
    if (e.status === 409 || e.status === 404) {
      $('preview-status').textContent =
        'No program is running: the preview appears while a recording or a stream runs.';
    } else if (e.status === 401) {
      $('preview-status').textContent = 'Enter the API key to see the preview.';
    } else {
      $('preview-status').textContent = 'Preview unavailable: ' + e.message;
    }
  }
}

async function loadLayouts() {
  try {
    const { layouts } = await json('GET', '/layouts');
    const select = $('layout');
    const chosen = select.value || 'grid';
    select.replaceChildren(...layouts.map((name) => new Option(name, name, false, name === chosen)));
  } catch (e) {
    if (e.status !== 401) say(e.message);
  }
}

async function action(button, work) {
  button.disabled = true;
  say('');
  try {
    await work();
  } catch (e) {
    say(e.message);
  }
  await refreshRoom();
}

$('record-start').addEventListener('click', (ev) => action(ev.currentTarget, async () => {
  const rec = await json('POST', roomPath() + '/recordings', { layout: $('layout').value || 'grid' });
  showRecording(rec);
}));

$('record-stop').addEventListener('click', (ev) => action(ev.currentTarget, async () => {
  if (current.recording) await call('POST', '/recordings/' + encodeURIComponent(current.recording.id) + '/stop');
}));

$('stream-start').addEventListener('click', (ev) => action(ev.currentTarget, async () => {
  const url = $('stream-url').value.trim();
  if (!url) throw new Error('Enter an rtmp:// or rtmps:// destination.');
  const s = await json('POST', roomPath() + '/streams', { destinations: [url], layout: $('layout').value || 'grid' });
  showStream(s);
}));

$('stream-stop').addEventListener('click', (ev) => action(ev.currentTarget, async () => {
  if (current.stream) await call('POST', '/streams/' + encodeURIComponent(current.stream.id) + '/stop');
}));

$('layout').addEventListener('change', async () => {
  const layout = $('layout').value;
  const status = $('layout-status');
  say('');
  const targets = [];
  if (current.recording && current.recording.status !== 'stopping') targets.push('/recordings/' + encodeURIComponent(current.recording.id));
  if (current.stream) targets.push('/streams/' + encodeURIComponent(current.stream.id));
  if (!targets.length) {
    status.textContent = 'Used for the next recording or stream.';
    return;
  }
  status.textContent = 'Switching to ' + layout + '…';
  try {
    for (const t of targets) await json('PATCH', t, { layout });
    status.textContent = 'Showing ' + layout + '.';
  } catch (e) {
    status.textContent = '';
    say(e.message);
  }
  await refreshRoom();
});

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY_ITEM, $('api-key').value.trim());
  $('api-key').value = '';
  loadLayouts();
  refreshRoom();
});

async function loop(work, every) {
  for (;;) {
    const started = Date.now();
    await work();
    await new Promise((r) => setTimeout(r, Math.max(0, every - (Date.now() - started))));
  }
}

$('room-name').textContent = room;
document.title = 'Tessera: control ' + room;
if (!apiKey()) $('key-status').textContent = 'Enter the API key.';
loadLayouts();
loop(refreshRoom, ROOM_POLL_MS);
loop(refreshPreview, PREVIEW_POLL_MS);
