// Portrait-rights refusals as clients see them (P13 through the HTTP face):
// 422 with code portrait_rights from both APIs, a "refused" event on the
// stream, and messages that name no one. The server's test-mode stand-in
// refuses prompts that contain a given name and images of exactly 72x72.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, cleanup, tempDir, readEvents, filesUnder } from './helpers.mjs';

const NAME = 'Zorblax Quimby';

test('refused prompts and results', async () => {
  const root = tempDir();
  const srv = await startServer({ dataDir: root + '/data',
    env: { TOGETHERSHOT_TEST_PORTRAIT: NAME } });
  try {
    // The OpenAI client surfaces the refusal as a 422 with our code.
    const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
    await assert.rejects(client.images.generate({ prompt: `a photo of ${NAME} waving`,
      size: '64x64', steps: 1 }), (err) => {
      assert.equal(err.status, 422);
      assert.equal(err.code, 'portrait_rights');
      assert.doesNotMatch(err.message, /Zorblax|Quimby/i, 'the message names no one');
      return true;
    });

    // The native API refuses at submit, same shape.
    const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: `${NAME.toLowerCase()} at the beach`, size: '64x64' }) });
    assert.equal(r.status, 422);
    const e = await r.json();
    assert.equal(e.error.code, 'portrait_rights');
    assert.doesNotMatch(e.error.message, /Zorblax|Quimby/i);

    // A generated image that shows a protected person: the job ends refused,
    // the stream says so, and nothing of it is kept.
    const ok = await fetch(`${srv.url}/v1/jobs`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a crowd', size: '72x72', steps: 2 }) });
    assert.equal(ok.status, 202);
    const job = await ok.json();
    const ev = await readEvents(`${srv.url}/v1/jobs/${job.id}/events?token=${job.token}`,
      (x) => ['done', 'failed', 'refused', 'cancelled'].includes(x.event));
    const last = ev.events.at(-1);
    assert.equal(last.event, 'refused');
    assert.equal(last.json.code, 'portrait_rights');
    assert.ok(last.json.message.length > 10);
    const st = await (await fetch(`${srv.url}/v1/jobs/${job.id}?token=${job.token}`)).json();
    assert.equal(st.status, 'refused');
    assert.equal(st.images.length, 0);
    const img = await fetch(`${srv.url}/v1/jobs/${job.id}/images/0.png?token=${job.token}`);
    assert.equal(img.status, 404);
    assert.equal(filesUnder(srv.dataDir).length, 0, 'no stored item survives a refusal');

    // The synchronous route answers 422 for a refused result too.
    await assert.rejects(client.images.generate({ prompt: 'a crowd', size: '72x72', steps: 1 }),
      (err) => err.status === 422 && err.code === 'portrait_rights');
  } finally {
    await srv.stop();
    cleanup(root);
  }
});
