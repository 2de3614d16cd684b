// Alice asks the demo helpdesk a question: the answer streams in (class "streaming" while it
// does), ends with a citation, and the citation opens a dialog quoting the handbook. The page
// still fits a phone's width.

import {
  assert, card, eventually, finishedAnswer, scenario, send, startConversation, step,
} from './lib.mjs';

await scenario('chat', async ({ person }) => {
  const alice = await person('Alice', 'alice@example.org');
  const { page } = alice;

  const helpdesk = card(page, 'helpdesk');
  await helpdesk.waitFor();
  assert(
    (await helpdesk.locator('h3').textContent()).includes('Fjordlight helpdesk'),
    'the helpdesk card shows its name',
  );
  await startConversation(page, 'helpdesk');

  // Records, from inside the page, whether the answer was ever marked as streaming and how
  // its text grew while it was.
  await page.evaluate(() => {
    const seen = { streaming: false, grewWhileStreaming: 0, lengths: [] };
    window.__streamWatch = seen;
    const look = () => {
      for (const message of document.querySelectorAll('.message.assistant.streaming')) {
        seen.streaming = true;
        const length = (message.querySelector('.content')?.textContent || '').length;
        if (length > 0 && length !== seen.lengths[seen.lengths.length - 1]) {
          seen.lengths.push(length);
          seen.grewWhileStreaming += 1;
        }
      }
    };
    new MutationObserver(look).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
      attributeFilter: ['class'],
    });
  });

  // The offline model answers at once, so the whole stream would reach the page in one piece.
  // A slow network (as Chrome's DevTools throttling) delivers it a little at a time, and the
  // page must show each piece as it comes.
  const cdp = await alice.context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: 1500,
    uploadThroughput: -1,
  });
  const before = await send(page, 'How do I request a new laptop?');
  const answer = await finishedAnswer(page, before);
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: -1,
  });
  const watch = await page.evaluate(() => window.__streamWatch);
  step(`streaming seen: ${JSON.stringify(watch)}`);
  assert(watch.streaming, 'the answer had class "streaming" while it streamed');
  assert(
    watch.grewWhileStreaming >= 2,
    'the answer grew piece by piece while it streamed (class "streaming" still on)',
  );
  const text = await answer.locator('.content').textContent();
  assert(/laptop/i.test(text), `the answer is about laptops: ${text}`);

  // The question is shown as the user's message.
  const question = page.locator('section.thread article.message.user').last();
  assert(
    (await question.textContent()).includes('How do I request a new laptop?'),
    'the question appears in the thread',
  );

  // A citation, opening a dialog with its quote.
  const citation = answer.locator('ul.citations button.citation').first();
  await citation.waitFor();
  assert(/^\s*\[1\]/.test(await citation.textContent()), 'the first citation reads [1] ...');
  await alice.screenshot('chat.png');

  await citation.click();
  const dialog = page.locator('dialog.citation-dialog[open]');
  await dialog.waitFor();
  const quote = (await dialog.textContent()).replace(/\s+/g, ' ');
  step(`citation dialog: ${quote.slice(0, 160)}`);
  assert(/laptop/i.test(quote), 'the citation quotes the handbook on laptops');
  await alice.screenshot('citation.png');
  await page.keyboard.press('Escape');
  await eventually('the citation dialog to close', async () => (await dialog.count()) === 0, 5000);

  // Stop: on a very slow network, the answer is stopped after its first text; the page says
  // so, the answer keeps what came, and the composer is ready for the next question.
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: 800,
    uploadThroughput: -1,
  });
  const beforeStop = await page.locator('section.thread article.message.assistant').count();
  await page.locator('form.composer textarea[name="content"]').fill('And a new phone?');
  await page.locator('form.composer button.send').click();
  const stopping = page.locator('section.thread article.message.assistant').nth(beforeStop);
  await eventually('the second answer to start', async () =>
    ((await stopping.locator('.content').textContent()) || '').length > 0, 25000);
  const stop = page.locator('form.composer button.stop');
  assert(await stop.isEnabled(), 'Stop is enabled while an answer streams');
  await stop.click();
  await stopping.locator('p.stopped').waitFor();
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: -1,
  });
  await eventually('the stopped answer to settle', async () =>
    !(await stopping.getAttribute('class')).includes('streaming'), 5000);
  assert(!(await stop.isEnabled()), 'Stop is disabled once the answer stopped');
  assert(await page.locator('form.composer button.send').isEnabled(), 'Send is ready again');

  // A phone's width: no sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert(overflow <= 1, `the chat fits a phone's width (it overflows by ${overflow}px)`);
  await alice.screenshot('chat-phone.png');
});
