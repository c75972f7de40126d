// End-to-end test of the chat across two servers sharing one Redis (examples/chat with
// `--redis`, feature `redis`), in headless Chromium.
//
// Run by scripts/browser.sh:
//   node tests/browser/chat-cluster-e2e.mjs CHAT_BINARY SCREENSHOT.png
// It starts its own redis-server (from PATH) on a free loopback port in a temporary directory,
// two chat servers with `--redis`, and one user on each: they join the same room and see each
// other in the member list, their messages and joins cross servers both ways, a third user who
// joins later on the other server gets the room's history (said on both servers), and a
// nickname taken on one server is refused on the other. Exits non-zero on any failure; Redis
// and both servers are always killed on the way out.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const [binary, screenshot] = process.argv.slice(2);
if (!binary || !screenshot) {
  console.error('usage: node chat-cluster-e2e.mjs CHAT_BINARY SCREENSHOT.png');
  process.exit(2);
}
const TIMEOUT = 5000;
const problems = [];
const children = [];
const redisDir = mkdtempSync(join(tmpdir(), 'volley-chat-redis-'));

function cleanUp() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  rmSync(redisDir, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanUp();
    process.exit(1);
  });
}

/** A free loopback port (closed again before Redis binds it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Our own redis-server: no persistence, its own directory; resolves once it is ready. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 10000);
    child.on('error', (e) => reject(new Error(`cannot run redis-server (${e.message}); ` +
      'this test needs Debian\'s redis-server on PATH')));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve(`redis://127.0.0.1:${port}`);
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`redis-server exited (${code ?? signal})`)));
  });
}

/** A chat server on a free port with `--redis`; resolves to its URL once it prints it. */
function startChat(redis) {
  const child = spawn(binary, ['--host', '127.0.0.1', '--port', '0', '--redis', redis], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the chat printed no address')), 10000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/open (https?:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(new URL(m[1]));
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`the chat exited (${code ?? signal})`)));
  });
}

async function openPage(browser, url, who) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('dialog', (d) => {
    problems.push(`${who}: a ${d.type()} dialog fired: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${who}: console error: ${m.text()}`);
  });
  await page.goto(url.href);
  await page.locator('#conn[data-state="online"]').waitFor();
  return page;
}

async function setNick(page, nick) {
  await page.fill('#nick', nick);
  await page.press('#nick', 'Enter');
}

async function waitForText(page, selector, text) {
  try {
    await page.waitForFunction(
      ([sel, want]) => [...document.querySelectorAll(sel)].some((n) => n.textContent === want),
      [selector, text],
      { timeout: TIMEOUT },
    );
  } catch {
    const seen = await page.$$eval(selector, (ns) => ns.map((n) => n.textContent)).catch(() => []);
    throw new Error(`no ${selector} with text ${JSON.stringify(text)}; saw ${JSON.stringify(seen)}`);
  }
}

async function waitForMembers(page, want) {
  const expected = JSON.stringify([...want].sort());
  try {
    await page.waitForFunction(
      (exp) => JSON.stringify([...document.querySelectorAll('#members li .from')]
        .map((n) => n.textContent).sort()) === exp,
      expected,
      { timeout: TIMEOUT },
    );
  } catch {
    const seen = await page.$$eval('#members li .from', (ns) => ns.map((n) => n.textContent));
    throw new Error(`members: wanted ${expected}, saw ${JSON.stringify(seen)}`);
  }
}

async function joinRoom(page, room) {
  await page.fill('#join-room', room);
  await page.press('#join-room', 'Enter');
  await waitForText(page, '#room-title', '# ' + room);
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

async function waitForMessage(page, from, text) {
  try {
    await page.waitForFunction(
      ([f, t]) => [...document.querySelectorAll('#messages li.msg')].some((li) =>
        li.dataset.from === f && li.querySelector('.text')?.textContent === t),
      [from, text],
      { timeout: TIMEOUT },
    );
  } catch {
    const seen = await page.$$eval('#messages li', (ns) => ns.map((n) => n.textContent));
    throw new Error(`no message ${JSON.stringify(text)} from ${from}; saw ${JSON.stringify(seen)}`);
  }
}

let step = 0;
async function check(name, fn) {
  step += 1;
  const t = Date.now();
  await fn();
  console.log(`ok ${step} - ${name} (${Date.now() - t} ms)`);
}

async function main() {
  const redis = await startRedis();
  const [urlA, urlB] = await Promise.all([startChat(redis), startChat(redis)]);
  console.log(`# redis at ${redis}; chat servers at ${urlA.href} and ${urlB.href}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  let ana;
  let ben;
  let cy;
  try {
    await check('one user on each server picks a nickname', async () => {
      [ana, ben] = await Promise.all([openPage(browser, urlA, 'ana'), openPage(browser, urlB, 'ben')]);
      await setNick(ana, 'ana');
      await waitForText(ana, '#members li.me .from', 'ana');
      await setNick(ben, 'ben');
      await waitForText(ben, '#members li.me .from', 'ben');
    });

    await check('both join #rust and see each other in the member list', async () => {
      await joinRoom(ana, 'rust');
      await joinRoom(ben, 'rust');
      await waitForMembers(ana, ['ana', 'ben']);
      await waitForMembers(ben, ['ana', 'ben']);
      await waitForText(ana, '#messages li.system .text', 'ben joined');
    });

    await check('messages cross servers both ways', async () => {
      await say(ana, 'hello from server A');
      await waitForMessage(ben, 'ana', 'hello from server A');
      await say(ben, 'and hello from server B');
      await waitForMessage(ana, 'ben', 'and hello from server B');
    });

    await check('a nickname taken on one server is refused on the other', async () => {
      cy = await openPage(browser, urlB, 'cy');
      await setNick(cy, 'ana');
      await waitForText(cy, '#messages li.error .text', '"ana" is taken');
      await setNick(cy, 'cy');
      await waitForText(cy, '#members li.me .from', 'cy');
    });

    await check('a user joining later on server B gets the history said on both servers', async () => {
      await joinRoom(cy, 'rust');
      await waitForMessage(cy, 'ana', 'hello from server A');
      await waitForMessage(cy, 'ben', 'and hello from server B');
      await waitForMembers(cy, ['ana', 'ben', 'cy']);
      await waitForMembers(ana, ['ana', 'ben', 'cy']);
      await waitForText(ana, '#messages li.system .text', 'cy joined');
    });

    await check('a leave crosses servers', async () => {
      await cy.context().close();
      cy = null;
      await waitForText(ana, '#messages li.system .text', 'cy left');
      await waitForMembers(ana, ['ana', 'ben']);
      await waitForMembers(ben, ['ana', 'ben']);
    });

    await check('no page errors, console errors or dialogs', async () => {
      if (problems.length) throw new Error(problems.join('\n'));
    });

    mkdirSync(dirname(screenshot), { recursive: true });
    await ana.screenshot({ path: screenshot });
    console.log(`# screenshot of ana's page (server A): ${screenshot}`);
  } catch (e) {
    const failed = screenshot.replace(/\.png$/, '') + '-failure.png';
    await (ana || ben)?.screenshot({ path: failed }).catch(() => {});
    console.error(`not ok ${step} - ${e.message}`);
    if (problems.length) console.error(problems.join('\n'));
    console.error(`# page at the failure: ${failed}`);
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => {});
    cleanUp();
  }
}

main().catch((e) => {
  console.error(`not ok - ${e.stack || e}`);
  process.exitCode = 1;
  cleanUp();
});
