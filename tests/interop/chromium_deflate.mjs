// Interop: headless Chromium's own WebSocket client against the echo harness
// (scripts/harness/echo.rs). Chromium always offers permessage-deflate; check the negotiated extension (ws.extensions) and that compressible
// text of 64 KiB and more, small messages and binary come back unchanged.
// Usage: node tests/interop/chromium_deflate.mjs ws://127.0.0.1:PORT/ [EXPECTED]
// (EXPECTED: `;`-separated parameters the negotiated extension must contain)
import { createRequire } from 'node:module';

const require = createRequire(new URL('../browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const url = process.argv[2];
const expected = (process.argv[3] || '').split(';').filter((e) => e);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  // CHROMIUM_HOME: a home whose NSS database trusts the test CA (wss:// URLs).
  env: process.env.CHROMIUM_HOME ? { ...process.env, HOME: process.env.CHROMIUM_HOME } : undefined,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // launch() gives the browser a fresh temporary profile directory and removes it afterwards.
});
let failed = false;
try {
  const page = await browser.newPage();
  const result = await page.evaluate(async (url) => {
    const chatty = (n) => '{"type":"chat","room":"lobby","text":"hello everyone"}\n'.repeat(n / 40 + 1).slice(0, n);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    await new Promise((ok, err) => { ws.onopen = ok; ws.onerror = () => err(new Error('connect failed')); });
    const next = () => new Promise((ok) => { ws.onmessage = (e) => ok(e.data); });
    const checks = [];
    for (const n of [0, 5, 125, 1000, 65536, 300000]) {
      const text = chatty(n);
      const p = next();
      ws.send(text);
      const got = await p;
      checks.push({ n, ok: got === text });
    }
    // A stream of small, similar messages: with context takeover each refers to the earlier
    // ones, through the windows both sides agreed.
    for (let i = 0; i < 300; i++) {
      const text = JSON.stringify({ type: 'message', id: i, from: 'ada', text: 'x'.repeat(i % 97) + ' hello ' + i });
      const p = next();
      ws.send(text);
      const got = await p;
      if (got !== text) { checks.push({ n: `stream ${i}`, ok: false }); break; }
    }
    const bin = new Uint8Array(70000).map((_, i) => i % 251);
    const p = next();
    ws.send(bin);
    const got = new Uint8Array(await p);
    checks.push({ n: 'binary', ok: got.length === bin.length && got.every((b, i) => b === bin[i]) });
    const extensions = ws.extensions;
    ws.close(1000, 'done');
    return { extensions, checks };
  }, url);
  console.log(`chromium interop: extensions=${JSON.stringify(result.extensions)}`);
  if (!result.extensions.startsWith('permessage-deflate')) {
    console.error('permessage-deflate was not negotiated');
    failed = true;
  }
  const params = result.extensions.split(';').map((p) => p.trim());
  for (const e of expected) {
    if (!params.includes(e)) { console.error(`${e} not in the negotiated extension`); failed = true; }
  }
  for (const c of result.checks) {
    if (!c.ok) { console.error(`echo mismatch for ${c.n}`); failed = true; }
  }
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log('chromium interop ok');
