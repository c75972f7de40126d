// What the browser tests (chat-e2e.mjs, chat-cluster-e2e.mjs, files-e2e.mjs) share: the
// command line, child processes (servers, redis-server) and temporary directories that are
// always cleaned up on the way out, headless Chromium, and the TAP-like step reporting
// (`ok N - name`, and `not ok N - error` with a screenshot of the page at the failure).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Page errors, console errors and dialogs seen so far: each one fails the test. */
export const problems = [];

// ---- the command line --------------------------------------------------------------------------

/**
 * The test's two arguments, `[binary, screenshot]`; prints the usage and exits when either is
 * missing. `script` and `binaryName` are for the usage line (e.g. 'chat-e2e.mjs', 'CHAT_BINARY').
 */
export function parseArgs(script, binaryName) {
  const [binary, screenshot] = process.argv.slice(2);
  if (!binary || !screenshot) {
    console.error(`usage: node ${script} ${binaryName} SCREENSHOT.png`);
    process.exit(2);
  }
  return [binary, screenshot];
}

// ---- child processes and temporary directories -----------------------------------------------

const children = [];
const tempDirs = [];

/** SIGKILL `child` unless it has already exited. */
export function kill(child) {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Kill every child started by `spawnChild` and remove every `tempDir`; safe to call again. */
export function cleanUp() {
  for (const c of children) kill(c);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

process.on('exit', cleanUp);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanUp();
    process.exit(1);
  });
}

/** A new temporary directory named `prefix` + random letters, removed by `cleanUp`. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/**
 * Spawn `command` with `args`, killed by `cleanUp`: stdout piped (for `waitForOutput`), stderr
 * shown, and RUST_LOG=warn unless set.
 */
export function spawnChild(command, args) {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  children.push(child);
  return child;
}

/**
 * Resolves to the first match of `pattern` in `child`'s stdout. Rejects if the child cannot be
 * run, exits first, or prints no match within 10 s (with the error `silence`). `name` (e.g.
 * 'the server') is for the error messages.
 */
export function waitForOutput(child, pattern, name, silence = `${name} printed no address`) {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(silence)), 10000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${name} (${e.message})`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal})`));
    });
  });
}

/**
 * Start a server (an example binary) with `args`, killed by `cleanUp`; resolves to
 * `{ child, url }` once it prints `open URL`.
 */
export async function startServer(binary, args, name = 'the server') {
  const child = spawnChild(binary, args);
  const m = await waitForOutput(child, /open (https?:\/\/\S+)/, name);
  return { child, url: new URL(m[1]) };
}

// ---- the browser -----------------------------------------------------------------------------

/**
 * Headless Chromium: $CHROMIUM or /usr/bin/chromium. Playwright gives each launch a fresh
 * temporary --user-data-dir and removes it on close. $CHROMIUM_HOME: a home whose NSS database
 * (.pki/nssdb) trusts a test CA, so https and wss are verified like any site's (no certificate
 * error is ignored).
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    env: process.env.CHROMIUM_HOME ? { ...process.env, HOME: process.env.CHROMIUM_HOME } : undefined,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

// ---- reporting -------------------------------------------------------------------------------

let step = 0;

/**
 * Run one step of the test and print `ok N - name (T ms)`, followed by `: note` when `fn`
 * resolves to a note (a figure, say). A step that throws is reported by `reportFailure`.
 */
export async function check(name, fn) {
  step += 1;
  const t = Date.now();
  const note = await fn();
  console.log(`ok ${step} - ${name} (${Date.now() - t} ms)${note ? `: ${note}` : ''}`);
}

/**
 * Report the error `e` that failed the current step: a screenshot of `page` (when there is one)
 * next to `screenshot` as NAME-failure.png, `not ok N - message`, and the problems seen. Sets a
 * failing exit code.
 */
export async function reportFailure(e, page, screenshot) {
  const failed = screenshot.replace(/\.png$/, '') + '-failure.png';
  await page?.screenshot({ path: failed }).catch(() => {});
  console.error(`not ok ${step} - ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  console.error(`# page at the failure: ${failed}`);
  process.exitCode = 1;
}

/** For `main().catch(...)`: report an error outside the steps, fail, and clean up. */
export function reportCrash(e) {
  console.error(`not ok - ${e.stack || e}`);
  process.exitCode = 1;
  cleanUp();
}
