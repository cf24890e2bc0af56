// The page in a real browser (headless Chromium): age confirmation, a photo
// upload, a generation with a live progress bar, a download and a delete.
// Every request the browser makes must stay on the server's origin (P8), and
// the browser must end with no cookie and nothing in web storage (P6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, cleanup, tempDir, MAGIC, FIXTURES } from '../integration/helpers.mjs';

const CHROMIUM = process.env.TS_CHROMIUM || '/usr/bin/chromium';

test('generate from the page with a photo, download, delete', { skip: !existsSync(CHROMIUM) },
  async () => {
    const root = tempDir('ts-e2e-');
    const srv = await startServer({ dataDir: root + '/data' });
    const profile = mkdtempSync(join(tmpdir(), 'ts-e2e-profile-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      acceptDownloads: true,
      viewport: { width: 1000, height: 900 },
    });
    const origin = new URL(srv.url).origin;
    const requests = [];
    context.on('request', (r) => requests.push(r.url()));
    try {
      const page = context.pages()[0] || await context.newPage();
      await page.goto(srv.url + '/');

      // P15: the age question comes first; the form is hidden until then.
      assert.equal(await page.isVisible('#age-gate'), true);
      assert.equal(await page.isVisible('#app'), false);
      await page.click('#age-yes');
      assert.equal(await page.isVisible('#app'), true);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'prompt');

      // P14: the rights note is on screen before any photo is chosen.
      assert.equal(await page.isVisible('#rights-note'), true);
      assert.match(await page.textContent('#rights-note'), /right/i);
      await page.setInputFiles('#files', join(FIXTURES, 'image', 'orient_6.jpg'));
      await page.waitForSelector('#thumbs img');
      assert.equal(await page.locator('#thumbs li').count(), 1);

      await page.fill('#prompt', 'the two of us on a mountain top');
      await page.click('.more summary');
      await page.fill('#steps', '60');
      await page.selectOption('#size', '256x256');

      // Record every value the progress bar takes.
      await page.evaluate(() => {
        const bar = document.getElementById('bar');
        window.barValues = [];
        new MutationObserver(() => window.barValues.push(bar.value))
          .observe(bar, { attributes: true });
      });
      // Another job holds the worker first, so the page's job is still queued
      // when its event stream opens and every step of it is seen live, also
      // on a loaded machine.
      const blocker = await (await fetch(`${srv.url}/v1/jobs`, { method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt: 'ahead in the queue', size: '64x64', steps: 60 }) }))
        .json();
      await page.click('#go');
      await page.waitForSelector('#gallery img', { timeout: 120000 });
      await fetch(`${srv.url}/v1/jobs/${blocker.id}`, { method: 'DELETE',
        headers: { 'X-Job-Token': blocker.token } });
      await page.waitForFunction(() => {
        const img = document.querySelector('#gallery img');
        return img && img.complete && img.naturalWidth > 0;
      });
      const values = await page.evaluate(() => window.barValues);
      const between = new Set(values.filter((v) => v > 0 && v < 100));
      assert.ok(between.size >= 2, `the bar moved through several values: ${values}`);
      assert.match(await page.textContent('#countdown'), /Deleted automatically in \d+:\d\d:\d\d/);
      // The model's native size is below 256x256: the page says the images
      // were generated smaller and upscaled, with the sizes the API reports.
      assert.match(await page.textContent('#size-note'),
        /^Generated at \d+x\d+ \(the model's own size\), upscaled to 256x256\.$/);

      const shot = process.env.TS_E2E_SCREENSHOT || join(root, 'page.png');
      await page.screenshot({ path: shot, fullPage: true });

      // Download the PNG through the page's own link.
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#gallery a.download >> nth=0'),
      ]);
      const saved = join(root, 'download.png');
      await download.saveAs(saved);
      assert.ok(MAGIC.png(readFileSync(saved)), 'the download is a PNG');

      // Delete now: the job is gone on the server too.
      const src = await page.getAttribute('#gallery img', 'src');
      const imgUrl = new URL(src, srv.url);
      await page.click('#delete');
      await page.waitForSelector('#results', { state: 'hidden' });
      const after = await fetch(imgUrl);
      assert.equal(after.status, 404, 'the image is gone after Delete now');

      // P6: nothing kept in the browser.
      assert.deepEqual(await context.cookies(), []);
      const storage = await page.evaluate(() => [localStorage.length, sessionStorage.length]);
      assert.deepEqual(storage, [0, 0]);

      // A phone-sized view, for a look at the responsive layout.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: shot.replace(/\.png$/, '-phone.png'), fullPage: true });

      // An error from the API is shown as a sentence.
      await page.fill('#prompt', 'x'.repeat(4000));
      await page.fill('#steps', '1000');
      await page.click('#go');
      await page.waitForSelector('#error:not([hidden])');
      assert.match(await page.textContent('#error'), /steps/i);

      if (process.env.TS_E2E_SCREENSHOT) copyFileSync(shot, shot); // kept for a look
    } finally {
      await context.close();
      await srv.stop();
      cleanup(profile);
      cleanup(root);
    }
    // P8: the page made no request to any other origin.
    assert.ok(requests.length >= 5);
    for (const u of requests) {
      if (u.startsWith('data:') || u.startsWith('blob:')) continue;
      assert.equal(new URL(u).origin, origin, `request left the origin: ${u}`);
    }
  });
