// The files example's browser client, served at /app.js by the server
// (`cargo run --release --example files`, then open the printed address).
//
// One WebSocket to /ws. Control messages are JSON text (see the protocol in
// examples/README.md); file bytes are binary messages.
//
// Upload: the page computes the file's SHA-256 (crypto.subtle.digest), announces
// {type: "upload", name, size, sha256}, waits for "ready", then sends the file in 1 MiB slices
// (file.slice: the browser reads them from disk as it sends). The server acknowledges what it
// has written with "progress" messages: those move the progress bar, and the page keeps at most
// 8 MiB sent but not yet acknowledged, so the bar shows what the server really has and Cancel
// takes effect at once. The server answers "stored" with the SHA-256 of what it wrote.
//
// Download: {type: "download", name} brings "file" (name, size), the file in binary messages of
// 1 MiB (a browser hands over a message only whole: several messages show progress), then
// "sent" with the SHA-256 the server computed while reading. The page checks it against the
// bytes it got and offers them as a link.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    conn: $('conn'), connText: $('conn-text'), limit: $('limit'), file: $('file'),
    upload: $('upload'), cancel: $('cancel'), upProgress: $('up-progress'),
    upStatus: $('up-status'), downProgress: $('down-progress'), downStatus: $('down-status'),
    downLink: $('down-link'), files: $('files'), noFiles: $('no-files'), log: $('log'),
  };

  const MiB = 1 << 20;
  const WINDOW = 8 * MiB; // bytes sent and not yet acknowledged by the server, at most

  let ws = null;
  let maxSize = Infinity;
  let piece = MiB;
  let upload = null; // {file, name, size, sha256, sent, acked, started, cancelling}
  let download = null; // {name, size, parts, received, started}
  let link = null; // the object URL of the last download
  const hashes = new Map(); // name → SHA-256 this page computed when uploading it

  // ---- display -------------------------------------------------------------------------------

  function fmtSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1024 * MiB) return `${(n / MiB).toFixed(1)} MiB`;
    return `${(n / 1024 / MiB).toFixed(2)} GiB`;
  }

  function rate(bytes, since) {
    const secs = Math.max((performance.now() - since) / 1000, 1e-3);
    return `${(bytes / MiB / secs).toFixed(1)} MiB/s`;
  }

  function setStatus(node, state, text, sha256) {
    node.dataset.state = state;
    node.textContent = text;
    if (sha256 === undefined) delete node.dataset.sha256;
    else node.dataset.sha256 = sha256;
  }

  function log(text, kind) {
    const li = document.createElement('li');
    li.className = kind || '';
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    li.append(time, ' ', text);
    el.log.prepend(li);
    while (el.log.children.length > 50) el.log.lastChild.remove();
  }

  function setConn(state, text) {
    el.conn.dataset.state = state;
    el.connText.textContent = text;
    updateButtons();
  }

  function updateButtons() {
    const online = ws && ws.readyState === WebSocket.OPEN;
    el.upload.disabled = !online || !!upload || !el.file.files.length;
    el.cancel.disabled = !upload || upload.cancelling;
    for (const b of el.files.querySelectorAll('button')) b.disabled = !online || !!download;
  }

  function showFiles(files) {
    el.files.replaceChildren();
    for (const f of files) {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = f.name;
      const size = document.createElement('td');
      size.className = 'num';
      size.textContent = fmtSize(f.size);
      const act = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'secondary';
      b.textContent = 'Download';
      b.dataset.name = f.name;
      b.addEventListener('click', () => startDownload(f.name));
      act.append(b);
      tr.append(name, size, act);
      el.files.append(tr);
    }
    el.noFiles.hidden = files.length > 0;
    updateButtons();
  }

  function send(msg) {
    ws.send(JSON.stringify(msg));
  }

  function hex(buffer) {
    return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ---- upload --------------------------------------------------------------------------------

  async function startUpload() {
    const file = el.file.files[0];
    if (!file || upload) return;
    if (file.size > maxSize) {
      setStatus(el.upStatus, 'error', `${file.name} is ${fmtSize(file.size)}: over the server's limit of ${fmtSize(maxSize)}.`);
      return;
    }
    const up = { file, name: file.name, size: file.size, sent: 0, acked: 0, cancelling: false };
    upload = up;
    updateButtons();
    el.upProgress.value = 0;
    delete el.upStatus.dataset.acked;
    setStatus(el.upStatus, 'hashing', `Computing the SHA-256 of ${up.name}…`);
    let sha256;
    try {
      sha256 = hex(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
    } catch (e) {
      if (upload === up) finishUpload('error', `Cannot read ${up.name}: ${e.message}`);
      return;
    }
    if (upload !== up) return; // cancelled, or the connection dropped, meanwhile
    up.sha256 = sha256;
    setStatus(el.upStatus, 'starting', `Uploading ${up.name}…`);
    send({ type: 'upload', name: up.name, size: up.size, sha256 });
  }

  /** Send slices while less than WINDOW bytes wait for the server's acknowledgement. */
  function pump() {
    const up = upload;
    if (!up || up.cancelling || up.started === undefined) return;
    while (up.sent < up.size && up.sent - up.acked < WINDOW) {
      const end = Math.min(up.sent + piece, up.size);
      ws.send(up.file.slice(up.sent, end));
      up.sent = end;
    }
  }

  function showUploadProgress() {
    const up = upload;
    el.upProgress.value = up.size ? up.acked / up.size : 1;
    el.upStatus.dataset.acked = up.acked;
    setStatus(el.upStatus, 'uploading',
      `Uploading ${up.name}: ${fmtSize(up.acked)} of ${fmtSize(up.size)} stored, ${rate(up.acked, up.started)}`);
  }

  function cancelUpload() {
    const up = upload;
    if (!up || up.cancelling) return;
    if (up.sha256 === undefined) {
      // Still hashing: nothing was sent.
      finishUpload('cancelled', `Cancelled ${up.name} before sending anything.`);
      return;
    }
    up.cancelling = true;
    updateButtons();
    setStatus(el.upStatus, 'cancelling', `Cancelling ${up.name}…`);
    send({ type: 'cancel' });
  }

  function finishUpload(state, text, sha256) {
    upload = null;
    setStatus(el.upStatus, state, text, sha256);
    log(text, state);
    updateButtons();
  }

  // ---- download ------------------------------------------------------------------------------

  function startDownload(name) {
    if (download) return;
    download = { name, size: 0, parts: [], received: 0, started: performance.now() };
    updateButtons();
    el.downProgress.value = 0;
    el.downLink.hidden = true;
    setStatus(el.downStatus, 'starting', `Asking for ${name}…`);
    send({ type: 'download', name });
  }

  function onData(buffer) {
    const down = download;
    if (!down) return;
    down.parts.push(buffer);
    down.received += buffer.byteLength;
    el.downProgress.value = down.size ? down.received / down.size : 1;
    setStatus(el.downStatus, 'downloading',
      `Downloading ${down.name}: ${fmtSize(down.received)} of ${fmtSize(down.size)}, ${rate(down.received, down.started)}`);
  }

  async function finishDownload(serverSha) {
    const down = download;
    const secs = ((performance.now() - down.started) / 1000).toFixed(1);
    const blob = new Blob(down.parts);
    down.parts = [];
    const sha256 = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
    download = null;
    const uploaded = hashes.get(down.name);
    let state;
    let text;
    if (down.received !== down.size || sha256 !== serverSha) {
      state = 'mismatch';
      text = `Downloaded ${down.name} but it is damaged: got ${fmtSize(down.received)} with SHA-256 ${sha256}, the server sent ${serverSha}.`;
    } else if (uploaded !== undefined && uploaded !== sha256) {
      state = 'mismatch';
      text = `Downloaded ${down.name}: SHA-256 ${sha256}, not the ${uploaded} it had when this page uploaded it.`;
    } else {
      state = 'done';
      text = `Downloaded ${down.name}: ${fmtSize(down.size)} in ${secs} s. SHA-256 ${sha256} matches the server's${uploaded ? ' and the upload\'s' : ''}.`;
    }
    setStatus(el.downStatus, state, text, sha256);
    log(text, state);
    if (link) URL.revokeObjectURL(link);
    link = URL.createObjectURL(blob);
    el.downLink.href = link;
    el.downLink.download = down.name;
    el.downLink.textContent = `Save ${down.name}`;
    el.downLink.hidden = false;
    updateButtons();
  }

  // ---- the connection ------------------------------------------------------------------------

  function onControl(m) {
    switch (m.type) {
      case 'hello':
        maxSize = m.max_size;
        piece = m.piece || piece;
        el.limit.textContent = `up to ${fmtSize(maxSize)} per file`;
        showFiles(m.files);
        break;
      case 'list':
        showFiles(m.files);
        break;
      case 'ready':
        if (!upload) break;
        upload.started = performance.now();
        if (upload.cancelling) break;
        showUploadProgress();
        pump();
        break;
      case 'progress':
        if (!upload || upload.cancelling) break;
        upload.acked = m.received;
        showUploadProgress();
        pump();
        break;
      case 'stored': {
        const up = upload;
        if (!up) break;
        el.upProgress.value = 1;
        const secs = (performance.now() - up.started) / 1000;
        if (m.ok && m.sha256 === up.sha256) {
          hashes.set(up.name, up.sha256);
          finishUpload('stored',
            `Stored ${up.name}: ${fmtSize(up.size)} in ${secs.toFixed(1)} s (${rate(up.size, up.started)}). SHA-256 ${m.sha256} matches.`,
            m.sha256);
        } else {
          finishUpload('error', `${up.name} was not stored: ${m.error || 'SHA-256 mismatch'} (server: ${m.sha256}, page: ${up.sha256}).`, m.sha256);
        }
        send({ type: 'list' });
        break;
      }
      case 'cancelled':
        if (!upload) break;
        finishUpload('cancelled',
          `Cancelled ${upload.name} at ${fmtSize(m.received)} of ${fmtSize(upload.size)}: the server deleted the partial file.`);
        break;
      case 'file':
        if (!download) break;
        download.size = m.size;
        download.started = performance.now();
        break;
      case 'sent':
        if (download) finishDownload(m.sha256);
        break;
      case 'error':
        // `for` says what failed: the upload, the download, or a request.
        if (m.for === 'upload' && upload) {
          finishUpload('error', `${upload.name}: ${m.text}`);
        } else if (m.for === 'download' && download) {
          setStatus(el.downStatus, 'error', `${download.name}: ${m.text}`);
          log(`${download.name}: ${m.text}`, 'error');
          download = null;
          updateButtons();
        } else {
          log(m.text, 'error');
        }
        break;
      default:
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${scheme}//${location.host}/ws`);
    ws.binaryType = 'arraybuffer';
    setConn('connecting', 'connecting…');
    ws.onopen = () => setConn('online', 'connected');
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') onControl(JSON.parse(e.data));
      else onData(e.data);
    };
    ws.onclose = () => {
      // The server deletes a partial upload when its connection ends.
      if (upload) finishUpload('error', `${upload.name}: the connection closed during the upload.`);
      if (download) {
        setStatus(el.downStatus, 'error', `${download.name}: the connection closed during the download.`);
        download = null;
      }
      setConn('offline', 'offline, retrying…');
      setTimeout(connect, 2000);
    };
  }

  el.file.addEventListener('change', updateButtons);
  el.upload.addEventListener('click', startUpload);
  el.cancel.addEventListener('click', cancelUpload);
  connect();
})();
