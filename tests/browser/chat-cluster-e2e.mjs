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
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import {
  check, cleanUp, launchBrowser, parseArgs, problems, reportCrash, reportFailure, spawnChild,
  startServer, tempDir, waitForOutput,
} from './common.mjs';
import {
  joinRoom, openPage, say, setNick, waitForMembers, waitForMessage, waitForText,
} from './chat-page.mjs';

const [binary, screenshot] = parseArgs('chat-cluster-e2e.mjs', 'CHAT_BINARY');
const redisDir = tempDir('volley-chat-redis-');

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
  const child = spawnChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', redisDir]);
  try {
    await waitForOutput(child, /Ready to accept connections/, 'redis-server', 'redis-server did not start');
  } catch (e) {
    if (!e.message.startsWith('cannot run')) throw e;
    throw new Error(`${e.message}; this test needs Debian's redis-server on PATH`);
  }
  return `redis://127.0.0.1:${port}`;
}

/** A chat server on a free port with `--redis`; resolves to its URL once it prints it. */
async function startChat(redis) {
  const args = ['--host', '127.0.0.1', '--port', '0', '--redis', redis];
  return (await startServer(binary, args, 'the chat')).url;
}

async function main() {
  const redis = await startRedis();
  const [urlA, urlB] = await Promise.all([startChat(redis), startChat(redis)]);
  console.log(`# redis at ${redis}; chat servers at ${urlA.href} and ${urlB.href}`);
  const browser = await launchBrowser();
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
    await reportFailure(e, ana || ben, screenshot);
  } finally {
    await browser.close().catch(() => {});
    cleanUp();
  }
}

main().catch(reportCrash);
