// What the browser scenarios share: Debian's Chromium driven by playwright-core, people signed
// in through the development identity provider, and the watch kept on every page they open.
//
// Every page is watched for what must never happen, whatever the scenario does: a console
// error, an uncaught exception, a request to another origin (remote images, scripts, beacons),
// or an alert/confirm/prompt the scenario did not announce with `person.expectDialog`. Any of
// them fails the scenario at the end, with the rest of what went wrong.
//
// Environment (set by crates/ajutant-server/tests/browser.rs): BASE_URL (the server), CHROMIUM
// (the browser binary), SCREENSHOTS (where screenshots go, optional), FAILURES (where a failing
// scenario leaves each page's screenshot and HTML, optional).

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const BASE_URL = required('BASE_URL').replace(/\/+$/, '');
export const ORIGIN = new URL(BASE_URL).origin;
const started = Date.now();

export function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

/// A line of progress, with the seconds since the scenario started.
export function step(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
}

/// Waits until `check` returns a truthy value (polled in Node, so it needs no script in the
/// page); fails with `what` after `timeout` ms.
export async function eventually(what, check, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/// Runs in the page: form controls without a label, buttons and links without text, images
/// without alt text, and a document without a language.
function unnamedControls() {
  const found = [];
  const describe = (el) => `<${el.tagName.toLowerCase()}${el.id ? ` id=${el.id}` : ''}${el.name ? ` name=${el.name}` : ''}>`;
  const labelled = (el) => (el.labels && el.labels.length > 0)
    || (el.getAttribute('aria-label') || '').trim() !== ''
    || (el.getAttribute('aria-labelledby') || '').trim() !== ''
    || (el.getAttribute('title') || '').trim() !== '';
  for (const el of document.querySelectorAll('input:not([type="hidden"]), select, textarea')) {
    if (!labelled(el)) found.push(`${describe(el)} has no label`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    const text = (el.textContent || '').trim();
    if (!text && !labelled(el)) found.push(`${describe(el)} has no text`);
  }
  for (const el of document.querySelectorAll('img:not([alt])')) found.push(`${describe(el)} has no alt`);
  if (!document.documentElement.lang) found.push('the document has no lang');
  return found;
}

/// Someone at a browser: their own context (cookies), one page, and what went wrong on it.
export class Person {
  constructor(label, context, page) {
    this.label = label;
    this.context = context;
    this.page = page;
    this.problems = [];
    this.dialogs = [];
    this.allowedConsole = [];
  }

  static async open(browser, label, viewport = { width: 1280, height: 800 }) {
    const context = await browser.newContext({ viewport, baseURL: BASE_URL });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const person = new Person(label, context, page);
    person.watch();
    return person;
  }

  watch() {
    const { page, context } = this;
    context.on('request', (request) => {
      const url = request.url();
      let parsed;
      try {
        parsed = new URL(url);
      } catch (_) {
        this.problems.push(`a request to an unparsable URL: ${url}`);
        return;
      }
      // data: (the charts' icons) and blob: stay in the page; everything else must be ours.
      if (parsed.protocol === 'data:' || parsed.protocol === 'blob:') return;
      if (parsed.origin !== ORIGIN) {
        this.problems.push(`a request left the origin: ${request.method()} ${url}`);
      }
    });
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const text = message.text();
      if (this.allowedConsole.some((pattern) => pattern.test(text))) return;
      this.problems.push(`console error on ${page.url()}: ${text}`);
    });
    page.on('pageerror', (error) => {
      this.problems.push(`uncaught exception on ${page.url()}: ${error.message}`);
    });
    // Every page that loads is checked for controls a screen reader could not name.
    page.on('load', async () => {
      try {
        const unnamed = await page.evaluate(unnamedControls);
        for (const what of unnamed) this.problems.push(`no accessible name on ${page.url()}: ${what}`);
      } catch (_) {
        // The page navigated on before the check ran; the next page is checked in its turn.
      }
    });
    page.on('dialog', async (dialog) => {
      const expected = this.dialogs.shift();
      if (!expected || expected.type !== dialog.type()) {
        this.problems.push(`an unexpected ${dialog.type()} dialog: ${dialog.message()}`);
        await dialog.dismiss();
        return;
      }
      expected.seen = dialog.message();
      if (expected.accept) {
        await dialog.accept(expected.text);
      } else {
        await dialog.dismiss();
      }
    });
  }

  /// Announces the next alert/confirm/prompt and how to answer it; returns a record whose
  /// `seen` is the dialog's message once it has been shown.
  expectDialog(type, { accept = true, text } = {}) {
    const expected = { type, accept, text, seen: null };
    this.dialogs.push(expected);
    return expected;
  }

  /// Console errors matching `pattern` are expected (e.g. a 404 the scenario asks for).
  allowConsoleError(pattern) {
    this.allowedConsole.push(pattern);
  }

  /// Signs in as the demo user with this e-mail address on the development provider's picker
  /// and lands on `returnTo`.
  async signIn(email, returnTo = '/chat') {
    const { page } = this;
    await page.goto(`/auth/login?return_to=${encodeURIComponent(returnTo)}`);
    await page.locator('button[name="user"]', { hasText: email }).click();
    await page.waitForURL(new RegExp(`^${escapeRegExp(ORIGIN + returnTo)}([?#].*)?$`));
    step(`${this.label} signed in as ${email}`);
  }

  async screenshot(name) {
    const dir = process.env.SCREENSHOTS;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    await this.page.screenshot({ path: path.join(dir, name) });
    step(`screenshot ${name}`);
  }

  /// What a failure leaves behind: the page as it looked and its HTML.
  async leaveEvidence(scenario) {
    const dir = process.env.FAILURES;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const base = path.join(dir, `${scenario}-${this.label.toLowerCase()}`);
    try {
      await this.page.screenshot({ path: `${base}.png`, fullPage: true });
      writeFileSync(`${base}.html`, await this.page.content());
      console.error(`evidence: ${base}.png, ${base}.html (page ${this.page.url()})`);
    } catch (error) {
      console.error(`no evidence from ${this.label}'s page: ${error.message}`);
    }
  }
}

/// Runs a scenario: `body({ browser, person })`, where `person(label, email, viewport)` opens a
/// context and signs in. Exits 0 when the body finished and no page saw a problem.
export async function scenario(name, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-gpu',
    ],
  });
  const people = [];
  let failure = null;
  try {
    await body({
      browser,
      person: async (label, email, viewport) => {
        const someone = await Person.open(browser, label, viewport);
        people.push(someone);
        if (email) await someone.signIn(email);
        return someone;
      },
    });
  } catch (error) {
    failure = error;
  }
  const problems = people.flatMap((p) => p.problems.map((problem) => `${p.label}: ${problem}`));
  for (const p of people) {
    const unseen = p.dialogs.filter((d) => d.seen === null);
    for (const d of unseen) problems.push(`${p.label}: the expected ${d.type} dialog never came`);
  }
  if (failure || problems.length > 0) {
    for (const p of people) await p.leaveEvidence(name);
  }
  await browser.close();
  if (failure) console.error(`${name} failed: ${failure.stack || failure}`);
  for (const problem of problems) console.error(`${name}: ${problem}`);
  if (failure || problems.length > 0) process.exit(1);
  step(`${name}: passed`);
}

// ---- the chat, as the scenarios use it -------------------------------------------------------

/// The assistant card for `assistantId` on /chat.
export function card(page, assistantId) {
  return page.locator(`article.assistant-card[data-assistant-id="${assistantId}"]`);
}

/// Starts a conversation with `assistantId` from /chat and waits for its page.
export async function startConversation(page, assistantId) {
  if (!/\/chat(\/|$|\?)/.test(new URL(page.url()).pathname)) await page.goto('/chat');
  await card(page, assistantId).getByRole('button', { name: 'Start a conversation' }).click();
  await page.waitForURL(/\/chat\/[^/?#]+$/);
  await page.locator('form.composer').waitFor();
  step(`conversation with ${assistantId} at ${new URL(page.url()).pathname}`);
}

/// The assistant messages in the thread.
export function answers(page) {
  return page.locator('section.thread article.message.assistant');
}

/// Types `question` into the composer and sends it; returns how many answers there were before.
export async function send(page, question) {
  const before = await answers(page).count();
  const composer = page.locator('form.composer');
  await composer.getByRole('textbox', { name: 'Message' }).fill(question);
  await composer.getByRole('button', { name: 'Send', exact: true }).click();
  step(`asked: ${question}`);
  return before;
}

/// Waits for the answer after `before` to finish streaming; returns its locator.
export async function finishedAnswer(page, before, timeout = 30000) {
  const answer = answers(page).nth(before);
  await answer.waitFor({ timeout });
  await eventually(
    'the answer to finish streaming',
    async () => {
      const classes = (await answer.getAttribute('class')) || '';
      const text = (await answer.locator('.content').textContent()) || '';
      return !classes.split(/\s+/).includes('streaming') && text.trim().length > 0;
    },
    timeout,
  );
  const error = answer.locator('.form-error[role="alert"]');
  if ((await error.count()) > 0 && (await error.first().isVisible())) {
    throw new Error(`the answer ended with an error: ${await error.first().textContent()}`);
  }
  step('the answer finished streaming');
  return answer;
}

/// Sends `question` and waits for its whole answer.
export async function ask(page, question) {
  return finishedAnswer(page, await send(page, question));
}

/// The page's own alert (`main [role=alert]`), once it shows text.
export async function pageAlert(page, timeout = 15000) {
  const alert = page.locator('main [role="alert"]').filter({ hasText: /\S/ }).first();
  await alert.waitFor({ state: 'visible', timeout });
  return (await alert.textContent()).trim();
}
