// End-to-end test of the chat example (examples/chat) in headless Chromium.
//
// Run by scripts/browser.sh, which installs Debian's chromium and playwright-core first:
//   node tests/browser/chat-e2e.mjs CHAT_BINARY SCREENSHOT.png
// It starts the chat server on a free port, then drives three users in separate browser
// contexts: nicknames, joining a room, the member list, messages both ways, the typing
// indicator, a private message, HTML injection shown as literal text, a server restart (the
// page reconnects, re-joins its room and sends what was typed while offline), and the live
// /stats page (its plot moves while messages are sent; /metrics is served). Exits
// non-zero on any failure; the server is always killed on the way out.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  check, cleanUp, kill, launchBrowser, parseArgs, problems, reportCrash, reportFailure, startServer,
} from './common.mjs';
import {
  joinRoom, openUser, say, TIMEOUT, waitForMembers, waitForMessage, waitForText,
} from './chat-page.mjs';

const [binary, screenshot] = parseArgs('chat-e2e.mjs', 'CHAT_BINARY');
const XSS = '<img src=x onerror=alert(1)>';

let expectOutage = false; // while the server is down, failed WebSocket connects are expected

/** Console errors that are no problem: failed WebSocket connects while the server is down. */
function outageError(text) {
  return expectOutage && /WebSocket|ERR_CONNECTION_REFUSED/.test(text);
}

// ---- the server ------------------------------------------------------------------------------

let server = null;

/** Start the chat on `port` (0: any free port); resolves to its URL once it prints it. */
async function startChat(port) {
  const args = ['--host', '127.0.0.1', '--port', String(port)];
  // CHAT_TLS_DIR (cert.pem, key.pem from scripts/tls-certs.sh): the chat over https and wss.
  if (process.env.CHAT_TLS_DIR) {
    const dir = process.env.CHAT_TLS_DIR;
    args.push('--tls-cert', `${dir}/cert.pem`, '--tls-key', `${dir}/key.pem`);
  }
  const { child, url } = await startServer(binary, args);
  server = child;
  return url;
}

// ---- the test ----------------------------------------------------------------------------------

async function main() {
  const url = await startChat(0);
  console.log(`# chat server at ${url.href}`);
  // CHROMIUM_HOME (set by scripts/browser.sh for the TLS run): its NSS store trusts the test CA.
  const browser = await launchBrowser();
  let alice;
  let bob;
  try {
    let carol;
    await check('three users open the page and pick nicknames', async () => {
      [alice, bob, carol] = await Promise.all(
        ['alice', 'bob', 'carol'].map((n) => openUser(browser, url, n, outageError)),
      );
    });

    await check('they join #rust and see each other in the member list', async () => {
      for (const p of [alice, bob, carol]) await joinRoom(p, 'rust');
      for (const p of [alice, bob, carol]) await waitForMembers(p, ['alice', 'bob', 'carol']);
      await waitForText(alice, '#rooms li.current .name', '# rust');
      await waitForText(alice, '#rooms li.current .count', '3');
    });

    await check('the page reconnects after a restart and sends what was queued', async () => {
      expectOutage = true;
      kill(server);
      await alice.locator('#conn[data-state="offline"]').waitFor();
      await say(alice, 'typed while the server was down');
      await waitForText(alice, '#messages li.pending .text', 'typed while the server was down');
      await startChat(url.port);
      for (const p of [alice, bob, carol]) {
        await p.locator('#conn[data-state="online"]').waitFor({ timeout: 10000 });
      }
      expectOutage = false;
      // Nicknames and the room were taken back, and the queued line went out.
      for (const p of [alice, bob, carol]) {
        await waitForText(p, '#room-title', '# rust');
        await waitForMembers(p, ['alice', 'bob', 'carol']);
        await waitForMessage(p, 'alice', 'typed while the server was down');
      }
      if (await alice.locator('#messages li.pending').count()) throw new Error('still pending');
    });

    await check('messages go both ways', async () => {
      await say(alice, 'Hi both! Does the new build handle 10k sockets?');
      await waitForMessage(bob, 'alice', 'Hi both! Does the new build handle 10k sockets?');
      await say(bob, 'Autobahn says yes: every case passes');
      await waitForMessage(alice, 'bob', 'Autobahn says yes: every case passes');
      await waitForMessage(carol, 'bob', 'Autobahn says yes: every case passes');
    });

    await check('user text is shown as text, never as HTML', async () => {
      await say(carol, XSS);
      for (const p of [alice, bob, carol]) await waitForMessage(p, 'carol', XSS);
      await new Promise((r) => setTimeout(r, 300)); // time for an onerror handler to fire
      for (const p of [alice, bob, carol]) {
        const imgs = await p.evaluate(() => document.querySelectorAll('img').length);
        if (imgs !== 0) throw new Error(`an <img> element was created (${imgs})`);
      }
      if (problems.some((p) => p.includes('dialog'))) throw new Error(problems.join('\n'));
    });

    await check('a private message reaches only its recipient', async () => {
      await alice.locator('#members li', { hasText: 'bob' }).click();
      await alice.locator('#pm-chip:not([hidden])').waitFor();
      await say(alice, 'psst: lunch after the release?');
      await waitForText(bob, '#messages li.private .text', 'psst: lunch after the release?');
      await waitForText(alice, '#messages li.private .text', 'psst: lunch after the release?');
      await alice.click('#pm-cancel');
      await say(alice, 'Ship it.');
      await waitForMessage(carol, 'alice', 'Ship it.');
      const leaked = await carol.locator('#messages li.private').count();
      if (leaked) throw new Error('carol saw a private message');
    });

    await check('others see who is typing', async () => {
      const text = 'Reconnect with backoff works too: I restarted the server mid-chat.';
      await say(bob, text);
      await waitForMessage(alice, 'bob', text);
      await carol.locator('#text').pressSequentially('Nice, the queued line', { delay: 10 });
      await waitForText(bob, '#typing', 'carol is typing…');
    });

    let stats;
    await check('the /stats page plots the live metrics, and the plot moves with traffic', async () => {
      const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
      stats = await context.newPage();
      stats.setDefaultTimeout(TIMEOUT);
      stats.on('pageerror', (e) => problems.push(`stats: page error: ${e.message}`));
      stats.on('console', (m) => {
        if (m.type() === 'error') problems.push(`stats: console error: ${m.text()}`);
      });
      await stats.goto(new URL('/stats', url).href);
      // Three users are connected: the card and the plot's newest point say so.
      await waitForText(stats, '#v-conns', '3');
      const rate = stats.locator('#plot-rate');
      const points = async () => Number(await rate.getAttribute('data-points'));
      await stats.waitForFunction(
        () => Number(document.querySelector('#plot-rate').dataset.points) >= 4);
      const before = await points();
      // A burst of messages: the messages-per-second line must rise above zero.
      for (let i = 0; i < 8; i++) await say(alice, `stats burst ${i}`);
      await waitForMessage(bob, 'alice', 'stats burst 7');
      await stats.waitForFunction(() => {
        const [rin] = (document.querySelector('#plot-rate').dataset.last || '').split(',');
        return Number(rin) > 0;
      }, null, { timeout: 6000 });
      if ((await points()) <= before) throw new Error('the plot did not advance');
      const conns = await stats.locator('#plot-conns').getAttribute('data-last');
      if (Number(conns) !== 3) throw new Error(`connections plotted: ${conns}`);
      // The exposition itself is served by the library on /metrics.
      const text = await (await stats.request.get(new URL('/metrics', url).href)).text();
      if (!/^volley_connections_open\{worker="0"\} \d+$/m.test(text)) {
        throw new Error('no volley_connections_open in /metrics');
      }
    });

    await check('no page errors, console errors or dialogs', async () => {
      if (problems.length) throw new Error(problems.join('\n'));
    });

    mkdirSync(dirname(screenshot), { recursive: true });
    await bob.screenshot({ path: screenshot });
    console.log(`# screenshot of bob's page: ${screenshot}`);
    const statsShot = screenshot.replace(/\.png$/, '') + '-stats.png';
    await stats.screenshot({ path: statsShot });
    console.log(`# screenshot of the /stats page: ${statsShot}`);
  } catch (e) {
    await reportFailure(e, bob || alice, screenshot);
  } finally {
    await browser.close().catch(() => {});
    cleanUp();
  }
}

main().catch(reportCrash);
