// Audrey (auditor) searches the audit trail for sign-ins and checks the chain's integrity.

import { assert, scenario, step } from './lib.mjs';

await scenario('audit', async ({ person }) => {
  const audrey = await person('Audrey', 'audrey@example.org');
  const { page } = audrey;
  await page.goto('/console/audit');
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();

  await page.getByLabel('Action', { exact: true }).fill('auth.');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForURL(/[?&]action=auth\./);
  const rows = page.locator('table tbody tr');
  await rows.first().waitFor();
  const count = await rows.count();
  step(`${count} audit rows for auth.*`);
  for (let i = 0; i < count; i += 1) {
    const text = await rows.nth(i).textContent();
    assert(/\bauth\./.test(text), `row ${i} is an auth.* record: ${text.replace(/\s+/g, ' ')}`);
  }
  // Audrey's own sign-in is among them.
  assert(
    /audrey/i.test(await page.locator('table tbody').textContent()),
    'Audrey\'s own sign-in is listed',
  );
  for (const name of ['Export JSON Lines', 'Export CSV']) {
    const href = await page.getByRole('link', { name, exact: true }).getAttribute('href');
    assert(href && href.startsWith('/'), `"${name}" is a link on this origin: ${href}`);
  }

  await page.getByRole('button', { name: 'Verify integrity', exact: true }).click();
  const result = page.locator('p#verify-result[role="status"]').filter({ hasText: /\S/ });
  await result.waitFor();
  const said = (await result.textContent()).trim();
  step(`verification: ${said}`);
  assert(/ok|intact|verified/i.test(said), `the chain is reported intact: ${said}`);
  assert(!/broken/i.test(said), `the chain is not reported broken: ${said}`);
  await audrey.screenshot('audit.png');
});
