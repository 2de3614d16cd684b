// Hostile content everywhere the chat shows untrusted text: an assistant whose description,
// grounding document and model answer are all XSS_CORPUS (crates/ajutant-testkit's fake
// upstream). Alice opens the chat, asks, and opens every citation, while streaming and again
// after a reload (when the stored answer is rendered). Nothing may run, load from elsewhere or
// survive as markup: every payload that runs sets window.__xss, and every remote URL is under
// remote.invalid (the watch in lib.mjs fails on any request leaving the origin).
//
// Environment: XSS_ASSISTANT, the assistant's id.

import {
  BASE_URL, answers, assert, card, eventually, finishedAnswer, required, scenario, send,
  startConversation, step,
} from './lib.mjs';

const assistant = required('XSS_ASSISTANT');

/// Everything wrong with the page, found from inside it; empty when it is clean.
function inspect() {
  const wrong = [];
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : '';
    const cls = el.classList.length ? `.${[...el.classList].join('.')}` : '';
    return `<${el.tagName.toLowerCase()}${id}${cls}>`;
  };
  if (window.__xss !== undefined) wrong.push(`window.__xss is ${String(window.__xss)}`);
  // Links and sources: only the web, mail, and this origin.
  const safe = (value) => {
    try {
      const url = new URL(value, document.baseURI);
      if (url.origin === window.location.origin) return true;
      return ['http:', 'https:', 'mailto:'].includes(url.protocol);
    } catch (_) {
      return false;
    }
  };
  for (const el of document.querySelectorAll('*')) {
    for (const attribute of el.attributes) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith('on')) wrong.push(`${describe(el)} has ${name}="${attribute.value}"`);
      if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'srcdoc'].includes(name)
          && /^\s*(javascript|vbscript|data):/i.test(attribute.value)
          && !(el.tagName === 'IMG' && /^data:image\//.test(attribute.value) && !el.closest('.content'))) {
        wrong.push(`${describe(el)} has ${name}="${attribute.value}"`);
      }
    }
  }
  for (const link of document.querySelectorAll('a[href]')) {
    if (!safe(link.getAttribute('href'))) wrong.push(`a link to ${link.getAttribute('href')}`);
    const external = (() => {
      try {
        return new URL(link.href).origin !== window.location.origin;
      } catch (_) {
        return true;
      }
    })();
    const rel = (link.getAttribute('rel') || '').split(/\s+/);
    if (external && !(rel.includes('noopener') && rel.includes('noreferrer'))) {
      wrong.push(`an external link without rel="noopener noreferrer": ${link.href}`);
    }
  }
  for (const script of document.querySelectorAll('script')) {
    const src = script.getAttribute('src');
    let ours = false;
    if (src) {
      const url = new URL(src, document.baseURI);
      ours = url.origin === window.location.origin && url.pathname.startsWith('/static/');
    }
    if (!ours) wrong.push(`a script that is not ours: ${script.outerHTML.slice(0, 120)}`);
  }
  // Where untrusted text is shown, it stays text: no embedded content, no styles, no forms.
  const untrusted = document.querySelectorAll(
    '.message .content, .assistant-card, dialog.citation-dialog, ul.citations',
  );
  const embedded = 'img, iframe, frame, object, embed, svg, math, script, style, link, meta, base, '
    + 'video, audio, source, picture, template, [style], [srcdoc]';
  for (const root of untrusted) {
    for (const el of root.querySelectorAll(embedded)) {
      wrong.push(`${describe(el)} inside ${describe(root)}: ${el.outerHTML.slice(0, 120)}`);
    }
  }
  return wrong;
}

async function clean(page, where) {
  const wrong = await page.evaluate(inspect);
  assert(wrong.length === 0, `${where}:\n  ${wrong.join('\n  ')}`);
  step(`clean: ${where}`);
}

/// Opens each citation of `answer` in turn, checking the page with the dialog open.
async function openEveryCitation(page, answer, where) {
  const citations = answer.locator('ul.citations button.citation');
  const count = await citations.count();
  assert(count >= 1, `${where}: the answer has a citation`);
  for (let i = 0; i < count; i += 1) {
    await citations.nth(i).click();
    const dialog = page.locator('dialog.citation-dialog[open]');
    await dialog.waitFor();
    const text = await dialog.textContent();
    assert(/parking/i.test(text), `${where}: citation ${i + 1} quotes the document: ${text}`);
    await clean(page, `${where}, citation ${i + 1} open`);
    await page.keyboard.press('Escape');
    await eventually('the citation dialog to close', async () => (await dialog.count()) === 0, 5000);
  }
}

await scenario('xss', async ({ person }) => {
  const alice = await person('Alice', null);

  // The policy, from the first page after sign-in.
  const signedIn = alice.page.waitForResponse((r) => new URL(r.url()).pathname === '/chat');
  await alice.signIn('alice@example.org');
  const chat = await signedIn;
  const csp = chat.headers()['content-security-policy'] || '';
  step(`CSP on /chat: ${csp}`);
  const directive = (name) => {
    const found = csp.split(';').map((d) => d.trim().split(/\s+/)).find((d) => d[0] === name);
    return found ? found.slice(1) : null;
  };
  const scripts = directive('script-src') || directive('default-src');
  assert(scripts && scripts.join(' ') === "'self'", `scripts come from this origin only: ${scripts}`);
  const images = directive('img-src') || directive('default-src');
  assert(
    images && images.every((source) => ["'self'", 'data:', "'none'"].includes(source)),
    `images come from this origin only: ${images}`,
  );
  for (const name of ['style-src', 'connect-src']) {
    const sources = directive(name) || directive('default-src');
    assert(sources && sources.every((s) => ["'self'", "'none'"].includes(s)), `${name}: ${sources}`);
  }
  assert(directive('default-src')?.join(' ') === "'none'", "default-src is 'none'");
  assert(directive('object-src')?.join(' ') === "'none'", "object-src is 'none'");
  assert(/frame-ancestors 'none'/.test(csp), 'the page cannot be framed');

  // The card shows the hostile description as text.
  const xssCard = card(alice.page, assistant);
  await xssCard.waitFor();
  const cardText = await xssCard.textContent();
  assert(
    cardText.includes('<script>window.__xss=1</script>'),
    `the card shows the description's markup as text: ${cardText.slice(0, 200)}`,
  );
  await clean(alice.page, '/chat with the hostile card');

  await startConversation(alice.page, assistant);
  const before = await send(alice.page, 'What is the quarterly parking policy?');
  // Checked while the answer streams in, as well as after.
  await answers(alice.page).nth(before).waitFor();
  await clean(alice.page, 'while the answer streams');
  const answer = await finishedAnswer(alice.page, before);
  const text = await answer.locator('.content').textContent();
  assert(/quarterly parking policy/.test(text), `the answer is shown: ${text.slice(0, 200)}`);
  // Rendered as Markdown (paragraphs), with the markup inside shown as text or dropped.
  assert((await answer.locator('.content p').count()) >= 2, 'the answer is rendered as Markdown');
  await clean(alice.page, 'after the streamed answer');
  await openEveryCitation(alice.page, answer, 'streamed');

  // The stored answer, as the server renders it.
  await alice.page.reload();
  const stored = answers(alice.page).last();
  await stored.waitFor();
  await eventually('the stored answer', async () => /quarterly parking policy/.test(
    (await stored.locator('.content').textContent()) || '',
  ));
  await clean(alice.page, 'after a reload');
  await openEveryCitation(alice.page, stored, 'reloaded');

  // Give anything deferred (timers, lazy loads) a moment to show itself.
  await alice.page.waitForTimeout(500);
  await clean(alice.page, 'at the end');
  await alice.screenshot('xss.png');
  step(`checked ${BASE_URL}`);
});
