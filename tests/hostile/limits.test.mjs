// Each configured limit answers with its exact status, headers and error
// (POLICY.md P11, P12): body size, uploads (count, bytes, pixels), prompt
// length, n, the per-client rate limit (429 + Retry-After) and the full
// queue (503 + Retry-After). One server with small limits; the synthetic
// test runner makes jobs slow enough (20 ms a step) to fill the queue.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, HERE, multipart, request, startServer } from './server.mjs';

const PNG_64x32 = readFileSync(join(FIXTURES, 'image', 'orient_5.png'));
const PNG_100x50 = readFileSync(join(HERE, 'files', 'png_100x50.png'));
const GRAY = readFileSync(join(FIXTURES, 'image', 'gray.png'));
let srv;

function err(r, status, message, { param, code } = {}) {
  const shown = r.body.subarray(0, 300).toString();
  assert.equal(r.status, status, `status; body ${shown}`);
  assert.ok(r.json && r.json.error, `OpenAI error shape; body ${shown}`);
  assert.ok(r.json.error.message.includes(message),
    `message '${r.json.error.message}' should contain '${message}'`);
  if (param !== undefined) assert.equal(r.json.error.param, param, 'param');
  if (code !== undefined) assert.equal(r.json.error.code, code, 'code');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
}

const post = (path, type, body, headers = {}) => request(`${srv.url}${path}`, {
  method: 'POST', headers: { 'Content-Type': type, ...headers }, body,
});
const json = (obj) => post('/v1/images/generations', 'application/json', JSON.stringify(obj));
const edit = (parts) => {
  const mp = multipart(parts);
  return post('/v1/images/edits', mp.type, mp.body);
};
const img = (data) => ({ name: 'image', data, filename: 'a.png', type: 'image/png' });

before(async () => {
  srv = await startServer({
    args: ['--test-mode', '--max-body-bytes', '64K', '--max-upload-bytes', '16K',
      '--max-uploads', '2', '--max-pixels', '4096', '--max-prompt-bytes', '100',
      '--max-n', '2', '--queue-size', '1'],
    env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' },
  });
});
after(async () => { if (srv) await srv.stop(); });

test('body size: 413 naming the limit in bytes', async () => {
  const r = await edit([{ name: 'prompt', data: 'x' }, img(Buffer.alloc(70 * 1024, 1))]);
  err(r, 413, 'the request body is larger than this endpoint accepts (65536 bytes)',
    { code: 'limit_exceeded', param: null });
});

test('uploads: a third image is 413 with the count and the limit', async () => {
  const r = await edit([{ name: 'prompt', data: 'x' }, img(GRAY), img(GRAY), img(GRAY)]);
  err(r, 413, 'request has 3 images; the limit is 2', { param: 'image' });
});

test('upload bytes: a file over --max-upload-bytes is 413 before decoding', async () => {
  const big = Buffer.concat([PNG_64x32, Buffer.alloc(17 * 1024)]);
  const r = await edit([{ name: 'prompt', data: 'x' }, img(big)]);
  err(r, 413, 'the limit is 16384', { param: 'image', code: 'limit_exceeded' });
});

test('pixels: an image over --max-pixels is 413 from its header', async () => {
  const r = await edit([{ name: 'prompt', data: 'x' }, img(PNG_100x50)]);
  err(r, 413, 'image is 100x50 pixels', { param: 'image', code: 'limit_exceeded' });
  const ok = await edit([{ name: 'prompt', data: 'x' }, img(PNG_64x32)]);
  assert.equal(ok.status, 200, '64x32 (2,048 pixels) is accepted: ' + ok.body.subarray(0, 200));
});

test('prompt length: 400 naming the bytes and the limit', async () => {
  const r = await json({ prompt: 'p'.repeat(101) });
  err(r, 400, 'prompt is 101 bytes; the limit is 100', { param: 'prompt', code: 'limit_exceeded' });
  const ok = await json({ prompt: 'p'.repeat(100) });
  assert.equal(ok.status, 200, 'exactly at the limit is accepted');
});

test('n: 400 naming n and the limit', async () => {
  const r = await json({ prompt: 'x', n: 3 });
  err(r, 400, 'n is 3; the limit is 2', { param: 'n', code: 'limit_exceeded' });
});

test('full queue: 503 with Retry-After, and the queue frees again', async () => {
  // One job runs (2 x 100 steps of 20 ms), one waits; the next is refused.
  const body = JSON.stringify({ prompt: 'x', n: 2, steps: 100 });
  const mk = () => post('/v1/jobs', 'application/json', body);
  const a = await mk();
  assert.equal(a.status, 202, 'first job: ' + a.body);
  let b = await mk();
  assert.equal(b.status, 202, 'second job queued: ' + b.body);
  const c = await mk();
  err(c, 503, 'queue', { code: 'queue_full' });
  const ra = c.headers.get('retry-after');
  assert.match(ra || '', /^[1-9]\d*$/, 'Retry-After is a whole number of seconds');
  for (const j of [a.json, b.json]) {
    const d = await request(`${srv.url}/v1/jobs/${j.id}`, {
      method: 'DELETE', headers: { 'X-Job-Token': j.token },
    });
    assert.equal(d.status, 200, 'delete');
  }
  let again;
  for (let i = 0; i < 100; i++) {
    again = await mk();
    if (again.status === 202) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(again.status, 202, 'accepted again once the queue drained');
  await request(`${srv.url}/v1/jobs/${again.json.id}`, {
    method: 'DELETE', headers: { 'X-Job-Token': again.json.token },
  });
});

test('rate limit: 429 with Retry-After once the burst is spent', async () => {
  const s2 = await startServer({
    rate: false,
    args: ['--test-mode', '--rate-expensive', '1', '--burst-expensive', '2'],
    env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' },
  });
  try {
    const go = () => request(`${s2.url}/v1/images/generations`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', steps: 1 }),
    });
    assert.equal((await go()).status, 200);
    assert.equal((await go()).status, 200);
    const r = await go();
    err(r, 429, 'too many requests from this client', { code: 'rate_limited' });
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${ra} in 1..60 s`);
    // Cheap routes have their own bucket: the page still answers.
    assert.equal((await request(`${s2.url}/healthz`)).status, 200);
  } finally {
    await s2.stop();
  }
});
