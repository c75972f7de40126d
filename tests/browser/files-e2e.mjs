// End-to-end test of the files example (examples/files) in headless Chromium.
//
// Run by scripts/browser.sh, which installs Debian's chromium and playwright-core first:
//   node tests/browser/files-e2e.mjs FILES_BINARY SCREENSHOT.png
// It writes a 100 MiB file of random bytes, starts the server on a free port with a temporary
// --dir, and drives the page: the upload (the page's status says stored with the right
// SHA-256, and the file on the server's disk has it too), a second upload cancelled midway (no
// partial file left), and the download back (the page checks the SHA-256 of what it got). It
// samples the server's resident memory (VmRSS in /proc/PID/status) throughout and fails if
// an upload or the download grows it by more than 64 MiB. Exits non-zero on any failure; the
// server is always killed and the temporary files removed on the way out.
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream, linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import {
  check, cleanUp, launchBrowser, parseArgs, problems, reportCrash, reportFailure, startServer,
  tempDir,
} from './common.mjs';

const [binary, screenshot] = parseArgs('files-e2e.mjs', 'FILES_BINARY');
const MiB = 1 << 20;
const SIZE = Number(process.env.FILES_E2E_MIB || 100) * MiB;
const MAX_RSS_GROWTH = 64 * MiB;
const TIMEOUT = 5000; // for any single small thing to appear
const TRANSFER_TIMEOUT = 60000; // for a whole upload or download

// ---- files and the server --------------------------------------------------------------------

const root = tempDir('volley-files-e2e-');
const serverDir = join(root, 'server');
const localDir = join(root, 'local');
mkdirSync(serverDir);
mkdirSync(localDir);

let server = null; // the files server's child process, for its /proc figures

/** The server's resident set size in bytes. */
function rss() {
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)[1]) * 1024;
}

/** The server's CPU time so far (user + system), in seconds. */
function cpu() {
  const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime: in clock ticks
}

/** Samples the server's RSS every 20 ms until stopped; `peak` is the highest seen. */
function sampleRss() {
  const s = { base: rss(), peak: 0 };
  s.peak = s.base;
  const timer = setInterval(() => {
    try {
      s.peak = Math.max(s.peak, rss());
    } catch {
      // the server is gone: the test fails elsewhere
    }
  }, 20);
  s.stop = () => {
    clearInterval(timer);
    s.peak = Math.max(s.peak, rss());
    s.growth = s.peak - s.base;
    return s;
  };
  return s;
}

/**
 * Runs `action` and returns what it returned (`result`) with the wall time (`secs`), the
 * server's CPU seconds (`cpuSecs`) and its RSS samples (`mem`) over it.
 */
async function measured(action) {
  const mem = sampleRss();
  const t = Date.now();
  const cpu0 = cpu();
  try {
    const result = await action();
    return { result, secs: (Date.now() - t) / 1000, cpuSecs: cpu() - cpu0, mem };
  } finally {
    mem.stop();
  }
}

function mib(n) {
  return `${(n / MiB).toFixed(1)} MiB`;
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

// ---- the test ----------------------------------------------------------------------------------

async function statusOf(page, selector) {
  return page.$eval(selector, (n) => ({ ...n.dataset, text: n.textContent }));
}

/** Wait for `selector`'s data-state to become `state`; fails at once on an error state. */
async function waitForState(page, selector, state, timeout) {
  try {
    await page.waitForFunction(
      ([sel, want]) => {
        const s = document.querySelector(sel).dataset.state;
        return s === want || s === 'error' || s === 'mismatch';
      },
      [selector, state],
      { timeout, polling: 100 },
    );
  } catch {
    // fall through: report what the page shows
  }
  const got = await statusOf(page, selector);
  if (got.state !== state) {
    throw new Error(`${selector}: wanted state ${state}, page shows ${got.state}: ${got.text}`);
  }
  return got;
}

async function main() {
  const big = join(localDir, 'big.bin');
  const second = join(localDir, 'second.bin');
  let want;
  await check(`write a ${mib(SIZE)} file of random bytes`, async () => {
    const data = randomBytes(SIZE);
    want = createHash('sha256').update(data).digest('hex');
    writeFileSync(big, data);
    linkSync(big, second); // the same bytes under another name, for the cancelled upload
    return `SHA-256 ${want}`;
  });

  const args = ['--host', '127.0.0.1', '--port', '0', '--dir', serverDir];
  const { child, url } = await startServer(binary, args);
  server = child;
  console.log(`# files server at ${url.href}, pid ${server.pid}, dir ${serverDir}`);
  const browser = await launchBrowser();
  let page;
  try {
    await check('the page opens and connects', async () => {
      const context = await browser.newContext({ viewport: { width: 1100, height: 520 } });
      page = await context.newPage();
      page.setDefaultTimeout(TIMEOUT);
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      await page.goto(url.href);
      await page.locator('#conn[data-state="online"]').waitFor();
      await page.locator('#no-files:not([hidden])').waitFor();
    });

    const figures = {};
    await check(`upload ${mib(SIZE)}: stored, SHA-256 checked by the server`, async () => {
      await page.setInputFiles('#file', big);
      const { result: st, secs, cpuSecs, mem } = await measured(async () => {
        await page.click('#upload');
        return waitForState(page, '#up-status', 'stored', TRANSFER_TIMEOUT);
      });
      figures.upload = { secs, mem, cpuSecs };
      if (st.sha256 !== want) throw new Error(`page shows SHA-256 ${st.sha256}, want ${want}`);
      if (!st.text.includes(`SHA-256 ${want} matches`)) throw new Error(`status: ${st.text}`);
      if (mem.growth > MAX_RSS_GROWTH) {
        throw new Error(`server RSS grew by ${mib(mem.growth)} (${mib(mem.base)} → ${mib(mem.peak)})`);
      }
      return `${secs.toFixed(1)} s including hashing in the page (${(SIZE / MiB / secs).toFixed(0)} MiB/s), ` +
        `server CPU ${cpuSecs.toFixed(1)} s; server RSS ${mib(mem.base)} → peak ${mib(mem.peak)} (+${mib(mem.growth)})`;
    });

    await check('the file on the server has the same bytes', async () => {
      const stored = join(serverDir, 'big.bin');
      if (statSync(stored).size !== SIZE) throw new Error(`size ${statSync(stored).size}`);
      const got = await sha256File(stored);
      if (got !== want) throw new Error(`stored file's SHA-256 is ${got}`);
      const left = readdirSync(serverDir);
      if (left.join() !== 'big.bin') throw new Error(`server dir holds ${JSON.stringify(left)}`);
      await page.locator('#files button[data-name="big.bin"]').waitFor();
    });

    await check('a second upload cancelled midway leaves no partial file', async () => {
      await page.setInputFiles('#file', second);
      const mem = sampleRss();
      await page.click('#upload');
      await page.waitForFunction(
        (min) => Number(document.querySelector('#up-status').dataset.acked || 0) >= min,
        10 * MiB,
        { timeout: TRANSFER_TIMEOUT, polling: 20 },
      );
      // The part file exists while the upload is under way.
      const during = readdirSync(serverDir).filter((n) => n.endsWith('.part'));
      await page.click('#cancel');
      const st = await waitForState(page, '#up-status', 'cancelled', TIMEOUT);
      mem.stop();
      const left = readdirSync(serverDir);
      if (left.join() !== 'big.bin') throw new Error(`server dir holds ${JSON.stringify(left)}`);
      if (during.length !== 1) throw new Error(`part files during the upload: ${JSON.stringify(during)}`);
      if (mem.growth > MAX_RSS_GROWTH) throw new Error(`server RSS grew by ${mib(mem.growth)}`);
      return st.text;
    });

    await check(`download ${mib(SIZE)} back: the page checks its SHA-256`, async () => {
      const { result: st, secs, cpuSecs, mem } = await measured(async () => {
        await page.click('#files button[data-name="big.bin"]');
        return waitForState(page, '#down-status', 'done', TRANSFER_TIMEOUT);
      });
      figures.download = { secs, mem, cpuSecs };
      if (st.sha256 !== want) throw new Error(`page shows SHA-256 ${st.sha256}, want ${want}`);
      if (!st.text.includes("matches the server's and the upload's")) {
        throw new Error(`status: ${st.text}`);
      }
      await page.locator('#down-link:not([hidden])').waitFor();
      const link = await page.$eval('#down-link', (a) => [a.download, a.href.slice(0, 5)]);
      if (link[0] !== 'big.bin' || link[1] !== 'blob:') throw new Error(`link ${link}`);
      if (mem.growth > MAX_RSS_GROWTH) throw new Error(`server RSS grew by ${mib(mem.growth)}`);
      return `${secs.toFixed(1)} s including hashing in the page, server CPU ${cpuSecs.toFixed(1)} s; ` +
        `server RSS +${mib(mem.growth)}`;
    });

    await check('a file sent as one 32 MiB message is streamed to disk the same way', async () => {
      // The page sends 1 MiB messages; any client may send one message as large as the file:
      // the server gets it in chunks all the same (Handler::on_chunk), with progress.
      const n = 32 * MiB;
      const mem = sampleRss();
      const got = await page.evaluate((size) => new Promise((resolve) => {
        const data = new Uint8Array(size);
        for (let i = 0; i < size; i += 65536) {
          crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, size)));
        }
        crypto.subtle.digest('SHA-256', data).then((digest) => {
          const sha256 = [...new Uint8Array(digest)]
            .map((b) => b.toString(16).padStart(2, '0')).join('');
          const ws = new WebSocket(`ws://${location.host}/ws`);
          let progress = 0;
          ws.onmessage = (e) => {
            const m = JSON.parse(e.data);
            if (m.type === 'hello') {
              ws.send(JSON.stringify({ type: 'upload', name: 'one-message.bin', size, sha256 }));
            } else if (m.type === 'ready') {
              ws.send(data);
            } else if (m.type === 'progress') {
              progress += 1;
            } else if (m.type === 'stored' || m.type === 'error') {
              ws.close();
              resolve({ ...m, want: sha256, progress });
            }
          };
        });
      }), n);
      mem.stop();
      if (!got.ok || got.sha256 !== got.want) throw new Error(`answer: ${JSON.stringify(got)}`);
      if (got.progress < 16) throw new Error(`only ${got.progress} progress messages`);
      const onDisk = await sha256File(join(serverDir, 'one-message.bin'));
      if (onDisk !== got.want) throw new Error(`stored file's SHA-256 is ${onDisk}`);
      if (mem.growth > MAX_RSS_GROWTH) throw new Error(`server RSS grew by ${mib(mem.growth)}`);
      return `${got.progress} progress messages; server RSS +${mib(mem.growth)}`;
    });

    await check('a name with a path separator is refused', async () => {
      const text = await page.evaluate(() => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === 'hello') {
            ws.send(JSON.stringify({ type: 'upload', name: '../evil', size: 1, sha256: '0'.repeat(64) }));
          } else if (m.type === 'error') {
            resolve(m.text);
            ws.close();
          }
        };
      }));
      if (!/bad file name/.test(text)) throw new Error(`answer: ${text}`);
      if (readdirSync(root).sort().join() !== 'local,server') throw new Error('wrote outside --dir');
    });

    await check('no page errors or console errors', async () => {
      if (problems.length) throw new Error(problems.join('\n'));
    });

    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`# screenshot: ${screenshot}`);
    const { upload, download } = figures;
    console.log(`# figures: upload ${mib(SIZE)} in ${upload.secs.toFixed(1)} s, server RSS +${mib(upload.mem.growth)} ` +
      `(${mib(upload.mem.base)} → ${mib(upload.mem.peak)}); download in ${download.secs.toFixed(1)} s, ` +
      `server RSS +${mib(download.mem.growth)}`);
  } catch (e) {
    await reportFailure(e, page, screenshot);
  } finally {
    await browser.close().catch(() => {});
    cleanUp();
  }
}

main().catch(reportCrash);
