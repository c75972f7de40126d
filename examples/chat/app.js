// The chat example's browser client, served at /app.js by the chat server
// (`cargo run --release --example chat`, then open the printed address).
//
// One WebSocket to /ws speaking the JSON protocol of protocol.rs. It reconnects with
// exponential backoff, keeps what the user types while offline and sends it once back in the
// room, and renders every piece of user text with textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    roomTitle: $('room-title'), online: $('online'), conn: $('conn'), connText: $('conn-text'),
    nickForm: $('nick-form'), nick: $('nick'), rooms: $('rooms'), joinForm: $('join-form'),
    joinRoom: $('join-room'), messages: $('messages'), typing: $('typing'), composer: $('composer'),
    text: $('text'), pmChip: $('pm-chip'), pmTo: $('pm-to'), pmCancel: $('pm-cancel'),
    members: $('members'), memberCount: $('member-count'),
  };

  const MAX_QUEUE = 10;           // messages kept while offline
  const MAX_LINES = 500;          // lines kept on screen
  const TYPING_EVERY_MS = 3000;   // how often "typing" is re-sent while typing
  const TYPING_SHOWN_MS = 5000;   // how long someone else's "typing" is shown

  const store = window.sessionStorage; // per tab: two tabs can be two users
  const st = {
    ws: null,
    phase: 'offline',           // offline → connecting → resuming (nick, join) → ready
    attempts: 0,                // failed connects in a row, for the backoff
    retryAt: 0,
    retryTimer: null,
    nickRetries: 0,
    me: null,                   // our nickname, as the server knows it
    wantNick: store.getItem('nick'),
    room: store.getItem('room') || 'lobby', // the room we want to be in
    joined: null,               // the room the server has us in
    queue: [],                  // messages typed while offline: {type, ...}
    usersSeq: 0,                // lists arrive from several server threads: keep the newest
    roomsSeq: 0,
    seen: new Set(),            // ids shown in the current view (history and live may overlap)
    maxId: 0,
    privates: [],               // recent private messages, kept across room switches
    pmTo: null,
    typing: new Map(),          // nick → timer
    typingSentAt: 0,
    limits: { text: 2000, nick: 24, room: 32 },
  };

  // ---- connection ------------------------------------------------------------------------

  function connect() {
    clearTimeout(st.retryTimer);
    setPhase('connecting');
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    const ws = new WebSocket(url);
    st.ws = ws;
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      const handler = handlers[msg.type];
      if (handler) handler(msg);
    };
    ws.onclose = (ev) => {
      if (st.ws !== ws) return;
      st.ws = null;
      st.joined = null;
      if (ev.code === 1008) {
        notice('error', 'The server closed the connection: ' + (ev.reason || 'policy'));
      }
      scheduleReconnect();
    };
  }

  // 0.5 s, 1 s, 2 s … up to 15 s, with jitter so a restarted server is not hit all at once.
  function scheduleReconnect() {
    const base = Math.min(15000, 500 * 2 ** st.attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    st.attempts += 1;
    st.retryAt = Date.now() + delay;
    st.retryTimer = setTimeout(connect, delay);
    setPhase('offline');
  }

  function setPhase(phase) {
    st.phase = phase;
    const state = phase === 'ready' ? 'online' : phase === 'offline' ? 'offline' : 'connecting';
    el.conn.dataset.state = state;
    updateConnText();
  }

  function updateConnText() {
    let text = { online: 'online', connecting: 'connecting…' }[el.conn.dataset.state];
    if (el.conn.dataset.state === 'offline') {
      const secs = Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000));
      text = 'offline · retry in ' + secs + ' s';
    }
    if (st.queue.length) text += ' · ' + st.queue.length + ' queued';
    el.connText.textContent = text;
  }
  setInterval(() => { if (st.phase === 'offline') updateConnText(); }, 1000);
  el.conn.addEventListener('click', () => { if (st.phase === 'offline') connect(); });

  function send(obj) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) st.ws.send(JSON.stringify(obj));
  }

  // Chat lines wait in the queue until we are back in the room; commands just set what we want.
  function sendOrQueue(obj) {
    if (st.phase === 'ready') return send(obj);
    if (st.queue.length >= MAX_QUEUE) return notice('error', 'Offline, and the queue is full.');
    st.queue.push(obj);
    const li = line('pending');
    li.append(span('text', obj.text));
    append(li);
    updateConnText();
  }

  // After (re)connecting: take our nickname back, then re-join our room, then send the queue.
  function resume() {
    if (st.wantNick && st.wantNick !== st.me) send({ type: 'nick', nick: st.wantNick });
    else send({ type: 'join', room: st.room });
  }

  // ---- what the server says --------------------------------------------------------------

  const handlers = {
    welcome(m) {
      st.attempts = 0;
      st.me = m.nick;
      if (!st.wantNick) el.nick.value = m.nick;
      st.limits = m.limits;
      el.text.maxLength = m.limits.text;
      el.nick.maxLength = m.limits.nick;
      el.joinRoom.maxLength = m.limits.room;
      st.usersSeq = 0;
      st.roomsSeq = 0;
      handlers.rooms(m);
      setPhase('resuming');
      resume();
    },
    nick(m) {
      st.me = m.nick;
      st.wantNick = m.nick;
      st.nickRetries = 0;
      store.setItem('nick', m.nick);
      el.nick.value = m.nick;
      if (st.phase === 'resuming' && !st.joined) send({ type: 'join', room: st.room });
    },
    joined(m) {
      st.joined = m.room;
      st.room = m.room;
      store.setItem('room', m.room);
      el.roomTitle.textContent = '# ' + m.room;
      el.text.placeholder = 'Message #' + m.room;
      document.title = '#' + m.room + ' · volley chat';
      clearView();
      renderRoomList();
      if (st.phase === 'resuming') {
        setPhase('ready');
        const queued = st.queue.splice(0);
        queued.forEach(send);
        updateConnText();
      }
    },
    left(m) {
      st.joined = null;
      el.roomTitle.textContent = 'no room';
      el.members.replaceChildren();
      el.memberCount.textContent = '';
      notice('system', 'You left #' + m.room + '. Pick a room to chat.');
      renderRoomList();
    },
    history(m) {
      if (m.room !== st.joined) return;
      m.messages.forEach(addMessage);
      st.privates.forEach(addPrivate);
      if (!m.messages.length) notice('system', 'No messages in #' + m.room + ' yet. Say hello!');
    },
    users(m) {
      if (m.room !== st.joined || m.seq < st.usersSeq) return;
      st.usersSeq = m.seq;
      el.memberCount.textContent = m.users.length;
      el.members.replaceChildren(...m.users.map(memberItem));
    },
    rooms(m) {
      if (m.seq < st.roomsSeq) return;
      st.roomsSeq = m.seq;
      st.roomList = m.rooms;
      el.online.textContent = m.online + ' online';
      renderRoomList();
    },
    system(m) {
      if (m.room !== st.joined) return;
      const li = line('system');
      li.append(timeEl(m.ts), span('text', m.text));
      append(li);
      el.online.textContent = m.online + ' online';
    },
    message(m) {
      if (m.room !== st.joined) return;
      setTyping(m.from, false);
      addMessage(m);
    },
    private(m) {
      st.privates.push(m);
      if (st.privates.length > 50) st.privates.shift();
      addPrivate(m);
    },
    typing(m) {
      if (m.room === st.joined && m.nick !== st.me) setTyping(m.nick, m.active);
    },
    error(m) {
      if (st.phase === 'resuming' && (m.code === 'nick_taken' || m.code === 'bad_nick')) {
        // Our old connection may still hold the name until the server notices it is gone.
        if (m.code === 'nick_taken' && st.nickRetries++ < 10) {
          setTimeout(() => {
            if (st.me !== st.wantNick) send({ type: 'nick', nick: st.wantNick });
          }, 3000);
        }
        send({ type: 'join', room: st.room });
      }
      if (st.phase === 'resuming' && !st.joined && /^(bad_room|too_many_rooms)$/.test(m.code)
          && st.room !== 'lobby') {
        st.room = 'lobby'; // the room we wanted is gone for good: fall back
        send({ type: 'join', room: st.room });
      }
      notice('error', m.text);
    },
  };

  // ---- rendering -------------------------------------------------------------------------

  function line(cls) {
    const li = document.createElement('li');
    li.className = cls;
    return li;
  }

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text; // user text is always text, never HTML
    return s;
  }

  function timeEl(ts) {
    const t = document.createElement('time');
    const d = new Date(ts);
    t.dateTime = d.toISOString();
    t.title = d.toLocaleString();
    t.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return t;
  }

  function nickEl(nick) {
    const s = span('from', nick);
    s.style.setProperty('--hue', hue(nick));
    return s;
  }

  // A stable colour per nickname: FNV-1a hash into a palette of readable hues.
  const HUES = [4, 28, 140, 175, 205, 230, 262, 290, 322, 345];
  function hue(nick) {
    let h = 2166136261;
    for (const c of nick.toLowerCase()) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
    return String(HUES[h % HUES.length]);
  }

  function clearView() {
    el.messages.replaceChildren();
    st.seen.clear();
    st.maxId = 0;
    st.typing.forEach(clearTimeout);
    st.typing.clear();
    renderTyping();
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(li) {
    const stick = nearBottom();
    el.messages.append(li);
    while (el.messages.childElementCount > MAX_LINES) el.messages.firstElementChild.remove();
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  // Lines with ids go in id order (messages from different server threads may cross), once.
  function insertById(li, id) {
    if (st.seen.has(id)) return;
    st.seen.add(id);
    li.dataset.id = id;
    const later = id > st.maxId ? null
      : [...el.messages.querySelectorAll('[data-id]')].find((n) => Number(n.dataset.id) > id);
    st.maxId = Math.max(st.maxId, id);
    if (later) later.before(li);
    else append(li);
  }

  function addMessage(m) {
    const li = line(m.from === st.me ? 'msg mine' : 'msg');
    const prev = el.messages.lastElementChild;
    // Consecutive lines from one author within 5 minutes read as one block.
    if (prev && prev.dataset.from === m.from && m.ts - Number(prev.dataset.ts) < 300000) {
      li.classList.add('cont');
    }
    li.dataset.from = m.from;
    li.dataset.ts = m.ts;
    li.append(timeEl(m.ts), nickEl(m.from), span('text', m.text));
    insertById(li, m.id);
  }

  function addPrivate(m) {
    const li = line('msg private');
    li.append(timeEl(m.ts), span('badge', 'private'), nickEl(m.from), span('arrow', '→'),
      nickEl(m.to), span('text', m.text));
    li.addEventListener('click', () => setPm(m.from === st.me ? m.to : m.from));
    insertById(li, m.id);
  }

  function notice(kind, text) {
    const li = line(kind);
    li.append(timeEl(Date.now()), span('text', text));
    append(li);
  }

  function memberItem(nick) {
    const li = document.createElement('li');
    li.append(nickEl(nick));
    if (nick === st.me) {
      li.classList.add('me');
      li.append(span('you', 'you'));
    } else {
      li.title = 'Send ' + nick + ' a private message';
      li.tabIndex = 0;
      li.addEventListener('click', () => setPm(nick));
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') setPm(nick); });
    }
    return li;
  }

  function renderRoomList() {
    const rooms = st.roomList || [];
    el.rooms.replaceChildren(...rooms.map((r) => {
      const li = document.createElement('li');
      li.tabIndex = 0;
      if (r.name === st.joined) li.className = 'current';
      li.append(span('name', '# ' + r.name), span('count', String(r.members)));
      const go = () => joinRoom(r.name);
      li.addEventListener('click', go);
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
      return li;
    }));
  }

  function setTyping(nick, active) {
    clearTimeout(st.typing.get(nick));
    st.typing.delete(nick);
    if (active) st.typing.set(nick, setTimeout(() => setTyping(nick, false), TYPING_SHOWN_MS));
    renderTyping();
  }

  function renderTyping() {
    const names = [...st.typing.keys()];
    el.typing.textContent =
      names.length === 0 ? '' :
      names.length === 1 ? names[0] + ' is typing…' :
      names.length <= 3 ? names.join(', ') + ' are typing…' :
      names.length + ' people are typing…';
  }

  function setPm(nick) {
    st.pmTo = nick;
    el.pmChip.hidden = !nick;
    el.pmTo.textContent = nick || '';
    el.composer.classList.toggle('whisper', !!nick);
    el.text.placeholder = nick ? 'Private message to ' + nick : 'Message #' + (st.joined || '');
    el.text.focus();
  }

  // ---- what the user does ----------------------------------------------------------------

  // Online, ask the server (and remember the answer); offline, remember the wish for later.
  function joinRoom(room) {
    if (st.phase === 'ready') send({ type: 'join', room });
    else st.room = room;
  }

  function setNick(nick) {
    if (st.phase === 'ready') send({ type: 'nick', nick });
    else st.wantNick = nick;
  }

  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.text.value;
    if (!text.trim()) return;
    const cmd = text.match(/^\/(\w+)\s*(.*)$/s);
    if (cmd) {
      const [, name, rest] = cmd;
      if (name === 'nick') setNick(rest.trim());
      else if (name === 'join') joinRoom(rest.trim().replace(/^#/, ''));
      else if (name === 'leave') send({ type: 'leave' });
      else if (name === 'msg' && /^\S+\s+\S/.test(rest)) {
        const [, to, body] = rest.match(/^(\S+)\s+(.*)$/s);
        sendOrQueue({ type: 'private', to, text: body });
      } else return notice('error', 'Commands: /nick name, /join room, /leave, /msg name text');
    } else if (st.pmTo) {
      sendOrQueue({ type: 'private', to: st.pmTo, text });
    } else {
      sendOrQueue({ type: 'message', text });
    }
    el.text.value = '';
    st.typingSentAt = 0;
  });

  el.text.addEventListener('input', () => {
    if (st.phase !== 'ready' || !st.joined || st.pmTo || el.text.value.startsWith('/')) return;
    const now = Date.now();
    if (el.text.value && now - st.typingSentAt > TYPING_EVERY_MS) {
      st.typingSentAt = now;
      send({ type: 'typing', active: true });
    } else if (!el.text.value && st.typingSentAt) {
      st.typingSentAt = 0;
      send({ type: 'typing', active: false });
    }
  });

  el.text.addEventListener('keydown', (e) => { if (e.key === 'Escape') setPm(null); });
  el.pmCancel.addEventListener('click', () => setPm(null));

  el.nickForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (el.nick.value.trim()) setNick(el.nick.value.trim());
  });

  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = el.joinRoom.value.trim().replace(/^#/, '');
    if (room) joinRoom(room);
    el.joinRoom.value = '';
  });

  if (st.wantNick) el.nick.value = st.wantNick;
  connect();
})();
