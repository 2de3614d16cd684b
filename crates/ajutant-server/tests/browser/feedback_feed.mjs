// Oscar (IT operations) watches the escalations feed while Alice, in a browser of her own,
// reports a serious privacy problem with an answer: she is told it went to IT operations, and
// within five seconds Oscar's live feed shows it without a reload.

import { ORIGIN, ask, assert, eventually, scenario, startConversation, step } from './lib.mjs';

await scenario('feedback_feed', async ({ person }) => {
  const oscar = await person('Oscar', 'oscar@example.org');
  const feedConnected = oscar.page.waitForResponse(
    (response) => response.url().startsWith(`${ORIGIN}/api/v1/ops/escalations/stream`),
    { timeout: 15000 },
  );
  await oscar.page.goto('/console/incidents');
  await oscar.page.getByRole('heading', { name: 'Escalations' }).waitFor();
  const stream = await feedConnected;
  assert(stream.status() === 200, `the escalation stream answered ${stream.status()}`);
  const feed = oscar.page.locator('ul#live-feed[aria-live="polite"]');
  await feed.waitFor({ state: 'attached' });
  const itemsBefore = await feed.locator('li.feed-item').count();
  step(`Oscar's live feed is connected (${itemsBefore} items)`);

  const alice = await person('Alice', 'alice@example.org');
  await startConversation(alice.page, 'helpdesk');
  const answer = await ask(alice.page, 'How many days of annual leave do I have?');

  const feedback = answer.locator('div.feedback');
  await feedback.getByText('More feedback', { exact: true }).click();
  await feedback.getByLabel('Privacy or data exposure', { exact: true }).check();
  await feedback.getByLabel('Report a serious issue', { exact: true }).check();
  await feedback
    .getByLabel('Comment', { exact: true })
    .fill('The answer showed a colleague\'s leave balance.');
  const sentAt = Date.now();
  await feedback.getByRole('button', { name: 'Send feedback', exact: true }).click();
  const status = feedback.getByRole('status').filter({ hasText: /\S/ });
  await status.waitFor();
  const said = (await status.textContent()).trim();
  step(`Alice is told: ${said}`);
  assert(/reported to IT operations/.test(said), `Alice is told it was reported: ${said}`);
  await alice.screenshot('feedback.png');

  const item = await eventually(
    'a new item in Oscar\'s live feed',
    async () => {
      const items = feed.locator('li.feed-item');
      if ((await items.count()) <= itemsBefore) return null;
      const found = items.filter({ hasText: 'helpdesk' });
      return (await found.count()) > 0 ? found.first() : null;
    },
    5000,
  );
  step(`the feed showed it ${Date.now() - sentAt} ms after sending`);
  const itemText = (await item.textContent()).replace(/\s+/g, ' ');
  assert(/privacy/i.test(itemText), `the feed item names the category: ${itemText}`);
  const open = item.getByRole('link', { name: 'Open incident' });
  const href = await open.getAttribute('href');
  assert(/^\/console\/incidents\/[^/]+$/.test(href), `"Open incident" links to the incident: ${href}`);
  await oscar.screenshot('escalations.png');

  // The incident page shows what Alice reported.
  await open.click();
  await oscar.page.waitForURL(/\/console\/incidents\/[^/]+$/);
  await oscar.page.getByText('colleague\'s leave balance').first().waitFor();
  step('the incident page shows the comment');
});
