// The chat page of examples/chat.py: plain JavaScript, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const here = document.body.dataset.server;
let myName = localStorage.getItem('chat-name') || '';

// one colour per server: by its place among the servers seen, sorted, so
// that pages which saw the same servers agree, and no two look alike
const palette = [212, 142, 24, 280, 350, 185, 48, 320];
const servers = new Set([here]);

function hue(label) {
  return palette[[...servers].sort().indexOf(label) % palette.length];
}

function know(label) {
  if (servers.has(label)) return;
  servers.add(label);
  for (const tag of document.querySelectorAll('.server')) {
    tag.style.setProperty('--hue', hue(tag.textContent));
  }
}

function serverTag(label) {
  know(label);
  const tag = document.createElement('span');
  tag.className = 'server';
  tag.textContent = label;
  tag.style.setProperty('--hue', hue(label));
  return tag;
}

function clock(seconds) {
  const d = seconds ? new Date(seconds * 1000) : new Date();
  return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit',
                                   second: '2-digit'});
}

function append(item) {
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.appendChild(item);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function showMessage(msg) {
  const item = document.createElement('li');
  item.className = 'message' + (msg.name === myName ? ' mine' : '');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = msg.name;
  const when = document.createElement('time');
  when.textContent = clock(msg.time);
  meta.append(name, ' via ', serverTag(msg.server), when);
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = msg.text;
  item.append(meta, text);
  append(item);
}

// a line from the page itself: command answers, connection events
function notice(title, lines = [], kind = 'info') {
  const item = document.createElement('li');
  item.className = 'notice ' + kind;
  const head = document.createElement('div');
  head.className = 'meta';
  const when = document.createElement('time');
  when.textContent = clock();
  head.append(title, when);
  item.appendChild(head);
  if (lines.length) {
    const list = document.createElement('ul');
    for (const parts of lines) {
      const li = document.createElement('li');
      li.append(...parts);
      list.appendChild(li);
    }
    item.appendChild(list);
  }
  append(item);
}

function showOnline(people) {
  const list = $('online');
  list.replaceChildren();
  for (const p of people) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = p.name;
    if (p.sid === socket.id) li.className = 'me';
    li.append(name, serverTag(p.server));
    list.appendChild(li);
  }
  $('online-count').textContent = people.length;
}

function setState(state, text) {
  const badge = $('state');
  badge.className = 'badge ' + state;
  badge.textContent = text;
}

for (const tag of document.querySelectorAll('.server')) {
  tag.style.setProperty('--hue', hue(tag.textContent));
}

// --- the connection ---------------------------------------------------------

const socket = io({autoConnect: false});
let everConnected = false;

socket.on('connect', async () => {
  const engine = socket.io.engine;
  setState('connected', 'connected · ' + engine.transport.name);
  engine.once('upgrade', (transport) => {
    if (socket.connected) setState('connected', 'connected · ' + transport.name);
  });
  $('recovered').hidden = !socket.recovered;
  if (everConnected) {
    notice(socket.recovered
      ? 'Reconnected: session recovered (what was sent meanwhile follows)'
      : 'Reconnected as a new session (messages sent meanwhile are lost)',
    [], socket.recovered ? 'good' : 'warn');
  }
  everConnected = true;
  await socket.emitWithAck('hello', myName);
  refreshCluster();
});
socket.on('disconnect', (reason) => {
  setState('disconnected', 'disconnected');
  notice(`Disconnected (${reason}); reconnecting…`, [], 'warn');
});
socket.io.on('reconnect_attempt', (n) => setState('connecting',
                                                  `reconnecting (try ${n})`));
socket.on('said', showMessage);
socket.on('online', showOnline);
socket.on('ping', (from, ack) => ack(`${myName} in a browser on ${here}`));

// --- commands ---------------------------------------------------------------

const commands = {
  async who() {
    const people = await socket.timeout(10000).emitWithAck('who');
    notice(`/who: ${people.length} online`,
           people.map((p) => [p.name + ' on ', serverTag(p.server)]));
  },
  async ping() {
    const answer = await socket.timeout(10000).emitWithAck('ping-servers');
    const lines = answer.servers.map((s) => [
      'pong from ', serverTag(s.server), ` (${s.one_way_ms} ms one way)`]);
    if (!answer.servers.length && !answer.timed_out) {
      notice(`/ping from ${answer.from}: no other server to ask`);
      return;
    }
    notice(`/ping from ${answer.from}: ${answer.servers.length} other ` +
           `server(s) answered, round trip ${answer.round_trip_ms} ms` +
           (answer.timed_out ? ' (some did not answer)' : ''), lines);
  },
  async help() {
    notice('Commands', [
      ['/who: everyone on every server (fetch_sockets)'],
      ['/ping: every other server answers (server_side_emit)'],
      ['/help: this list']]);
  },
};

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  input.value = '';
  if (!text) return;
  if (!text.startsWith('/')) {
    socket.emit('say', text);
    return;
  }
  const command = commands[text.slice(1).split(/\s+/)[0]];
  if (!command) {
    notice(`Unknown command ${text}; try /help`, [], 'warn');
    return;
  }
  try {
    await command();
  } catch (err) {
    notice(`${text} failed: ${err.message}`, [], 'warn');
  }
});

$('drop').addEventListener('click', () => socket.io.engine.close());

// --- the cluster panel ------------------------------------------------------

async function refreshCluster() {
  if (!socket.connected) return;
  let info;
  try {
    info = await socket.timeout(10000).emitWithAck('cluster');
  } catch (err) {
    return;
  }
  showOnline(info.online);
  $('servers').textContent = info.servers;
  for (const key of ['published', 'delivered', 'lag']) {
    $(key).textContent = info.stats[key];
  }
  $('lag').classList.toggle('bad', !info.stats.healthy);
  const body = $('sockets').tBodies[0];
  body.replaceChildren();
  for (const [server, count] of Object.entries(info.sockets).sort()) {
    const row = body.insertRow();
    row.insertCell().appendChild(serverTag(server));
    row.insertCell().textContent = count;
  }
  $('cluster-time').textContent = clock();
}
setInterval(refreshCluster, 5000);

// --- the name ---------------------------------------------------------------

function setName(name) {
  myName = name;
  localStorage.setItem('chat-name', name);
  $('me-name').textContent = name;
  document.title = `${name} · socketio-streams chat · ${here}`;
  if (socket.connected) socket.emit('hello', name);
  else socket.connect();
}

$('name-form').addEventListener('submit', () => {
  const name = $('name').value.trim();
  if (name) setName(name);
});
$('ask-name').addEventListener('cancel', (e) => {
  if (!myName) e.preventDefault();  // a name is needed to join
});
$('rename').addEventListener('click', () => {
  $('name').value = myName;
  $('ask-name').showModal();
});

if (myName) setName(myName);
else $('ask-name').showModal();
