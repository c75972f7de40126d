// Helpers that drive the chat example's page (examples/chat) in Playwright, shared by
// chat-e2e.mjs and chat-cluster-e2e.mjs. Each wait gives up after TIMEOUT with an error that
// says what the page showed instead.
import { problems } from './common.mjs';

/** How long any single thing may take to appear on a page, in ms. */
export const TIMEOUT = 5000;

/**
 * Open the chat at `url` in a fresh browser context (own storage) as `who`; resolves once the
 * page is online. Dialogs, page errors and console errors go to `problems`, except console
 * errors whose text `expected(text)` accepts.
 */
export async function openPage(browser, url, who, expected = () => false) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('dialog', (d) => {
    problems.push(`${who}: a ${d.type()} dialog fired: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expected(m.text())) return;
    problems.push(`${who}: console error: ${m.text()}`);
  });
  await page.goto(url.href);
  await page.locator('#conn[data-state="online"]').waitFor();
  return page;
}

/** Ask for the nickname `nick` (the server may refuse it). */
export async function setNick(page, nick) {
  await page.fill('#nick', nick);
  await page.press('#nick', 'Enter');
}

/**
 * A new user in a fresh browser context, with the nickname `nick`, in the lobby: `openPage`,
 * then `setNick`, then wait for the name in the member list.
 */
export async function openUser(browser, url, nick, expected) {
  const page = await openPage(browser, url, nick, expected);
  await setNick(page, nick);
  await waitForText(page, '#members li.me .from', nick);
  return page;
}

/** Wait until some element matching `selector` has exactly `text` as its text. */
export async function waitForText(page, selector, text) {
  try {
    await page.waitForFunction(
      ([sel, want]) => [...document.querySelectorAll(sel)].some((n) => n.textContent === want),
      [selector, text],
      { timeout: TIMEOUT },
    );
  } catch {
    const seen = await page.$$eval(selector, (ns) => ns.map((n) => n.textContent)).catch(() => []);
    const want = JSON.stringify(text);
    throw new Error(`no ${selector} with text ${want}; saw ${JSON.stringify(seen)}`);
  }
}

/** The nicknames in the member list, in page order. */
export async function members(page) {
  return page.$$eval('#members li .from', (ns) => ns.map((n) => n.textContent));
}

/** Wait until the member list holds exactly the nicknames `want`, in any order. */
export async function waitForMembers(page, want) {
  const expected = JSON.stringify([...want].sort());
  try {
    await page.waitForFunction(
      (exp) => JSON.stringify([...document.querySelectorAll('#members li .from')]
        .map((n) => n.textContent).sort()) === exp,
      expected,
      { timeout: TIMEOUT },
    );
  } catch {
    throw new Error(`members: wanted ${expected}, saw ${JSON.stringify(await members(page))}`);
  }
}

/** Join `room` (without the #) and wait until the page shows it as the current room. */
export async function joinRoom(page, room) {
  await page.fill('#join-room', room);
  await page.press('#join-room', 'Enter');
  await waitForText(page, '#room-title', '# ' + room);
}

/** Type `text` into the message box and send it. */
export async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Wait for a chat line with this author and text. */
export async function waitForMessage(page, from, text) {
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
