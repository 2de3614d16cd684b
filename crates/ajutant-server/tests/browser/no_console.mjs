// Alice, an employee with no role, sees no way into the console, and its pages answer her
// with a 404 page, as if they did not exist.

import { assert, scenario, step } from './lib.mjs';

await scenario('no_console', async ({ person }) => {
  const alice = await person('Alice', 'alice@example.org');
  const { page } = alice;
  const links = page.locator('header').getByRole('link', { name: 'Console' });
  assert((await links.count()) === 0, 'the header has no Console link');
  assert((await page.locator('a[href^="/console"]').count()) === 0, 'no link leads into the console');

  // The browser logs each 404 document as a console error; those are the point here.
  alice.allowConsoleError(/status of 404/);
  for (const path of ['/console', '/console/switches', '/console/incidents', '/console/audit']) {
    const response = await page.goto(path);
    assert(response.status() === 404, `${path} answers ${response.status()}, not 404`);
    const type = response.headers()['content-type'] || '';
    assert(type.startsWith('text/html'), `${path}'s 404 is a page (${type})`);
    assert((await page.locator('header').getByRole('link', { name: 'Console' }).count()) === 0,
      `${path}'s error page has no Console link`);
    step(`${path}: 404 page "${(await page.title()).trim()}"`);
  }
});
