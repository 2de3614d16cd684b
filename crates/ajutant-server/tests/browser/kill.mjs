// Oscar switches the helpdesk off from the console while Alice is in a conversation with it:
// her next question is refused with a clear message. He switches it back on (giving a reason
// in the prompt) and her next question is answered again.

import { ask, assert, card, pageAlert, scenario, send, startConversation, step } from './lib.mjs';

await scenario('kill', async ({ person }) => {
  const alice = await person('Alice', 'alice@example.org');
  await startConversation(alice.page, 'helpdesk');
  await ask(alice.page, 'How do I request a new laptop?');

  const oscar = await person('Oscar', 'oscar@example.org');
  const { page } = oscar;
  await page.goto('/console/switches');
  await page.getByRole('heading', { name: 'Kill switches' }).waitFor();
  await page.getByLabel('What', { exact: true }).selectOption('assistant');
  await page.getByLabel('Assistant id or deployment name', { exact: true }).fill('helpdesk');
  await page.getByLabel('Reason', { exact: true }).fill('It gives wrong answers about laptops');
  await page.getByRole('button', { name: 'Switch off', exact: true }).click();
  const row = page.locator('table tbody tr').filter({ hasText: 'helpdesk' });
  await row.filter({ hasText: /killed/i }).waitFor();
  assert(
    (await row.first().textContent()).includes('It gives wrong answers about laptops'),
    'the switch row shows the reason',
  );
  step('Oscar switched the helpdesk off');
  await row.first().scrollIntoViewIfNeeded();
  await oscar.screenshot('switches.png');

  // The browser logs the refused request (503) as a console error; that refusal is the point.
  alice.allowConsoleError(/status of 503/);
  await send(alice.page, 'And a new phone?');
  const refusal = await pageAlert(alice.page);
  step(`Alice is told: ${refusal}`);
  assert(/disabled/i.test(refusal), `the refusal says the assistant is disabled: ${refusal}`);

  const prompt = oscar.expectDialog('prompt', { text: 'Answers checked and fixed' });
  await row.first().getByRole('button', { name: 'Switch back on', exact: true }).click();
  await page
    .locator('table tbody tr')
    .filter({ hasText: 'helpdesk' })
    .filter({ hasText: /active/i })
    .waitFor();
  assert(prompt.seen !== null, 'switching back on asked for a reason');
  step(`Oscar switched it back on (prompt: ${prompt.seen})`);

  // Alice's conversation works again, in the same page.
  const answer = await ask(alice.page, 'How do I request a new laptop?');
  assert(/laptop/i.test(await answer.locator('.content').textContent()), 'answered again');

  // And the card is still there for her on /chat.
  await alice.page.goto('/chat');
  await card(alice.page, 'helpdesk').waitFor();
});
