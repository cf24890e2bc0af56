// The HTTP face against the real binary: the OpenAI client, the native job
// API with its event stream and downloads, token rules, expiry, errors and
// security headers on every response.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import {
  startServer, cleanup, tempDir, fixture, readEvents, MAGIC, MODEL, checkSecurityHeaders,
} from './helpers.mjs';

let srv;
let root;
const seen = []; // every response, for the header sweep at the end

async function call(path, init = {}) {
  const resp = await fetch(srv.url + path, init);
  seen.push([`${init.method || 'GET'} ${path.split('?')[0]}`, resp]);
  return resp;
}

async function createJob(body, headers = { 'Content-Type': 'application/json' }) {
  const resp = await call('/v1/jobs', {
    method: 'POST', headers, body: typeof body === 'string' || body instanceof FormData
      ? body : JSON.stringify(body),
  });
  const json = await resp.json();
  return { resp, json };
}

async function waitDone(job) {
  const r = await readEvents(`${srv.url}/v1/jobs/${job.id}/events?token=${job.token}`,
    (ev) => ['done', 'failed', 'refused', 'cancelled'].includes(ev.event));
  return r;
}

before(async () => {
  root = tempDir();
  srv = await startServer({ dataDir: root + '/data' });
});

after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, 'serve exits 0 on SIGTERM');
  cleanup(root);
});

test('the page, its assets, privacy, healthz, metrics and models answer', async () => {
  const page = await call('/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /text\/html/);
  const html = await page.text();
  assert.match(html, /<script src="\/app.js"/);
  assert.doesNotMatch(html, /<script>(?!<)/, 'no inline script');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing from another origin');
  // The icon browsers ask for on their own comes from the binary.
  const icon = await call('/favicon.ico');
  assert.equal(icon.status, 200);
  assert.equal(icon.headers.get('content-type'), 'image/x-icon');
  const ico = Buffer.from(await icon.arrayBuffer());
  assert.ok(ico.length > 22 && ico.length < 4096, `a small icon: ${ico.length} bytes`);
  assert.deepEqual([...ico.subarray(0, 4)], [0, 0, 1, 0], 'an ICO header');
  assert.match(html, /<link rel="icon" href="\/favicon.ico"/);
  for (const [p, type] of [['/app.js', /javascript/], ['/style.css', /text\/css/]]) {
    const r = await call(p);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-type'), type);
    assert.doesNotMatch(await r.text(), /https?:\/\//, `${p} names no other origin`);
  }
  const priv = await call('/privacy');
  assert.equal(priv.status, 200);
  const privHtml = await priv.text();
  assert.match(privHtml, /24|hour|retention/i);
  // The CSP allows styles from this origin only: an inline <style> or style=
  // would be dropped by the browser and leave the page unstyled.
  assert.doesNotMatch(priv.headers.get('content-security-policy'), /unsafe-inline/);
  assert.doesNotMatch(privHtml, /<style|style=/i, 'no inline style on /privacy');
  assert.match(privHtml, /<link rel="stylesheet" href="\/style.css">/);
  const hz = await call('/healthz');
  assert.equal(hz.status, 200);
  assert.equal((await hz.json()).status, 'ok');
  const met = await call('/metrics');
  assert.equal(met.status, 200, 'metrics answer loopback');
  const metrics = await met.text();
  assert.match(metrics, /# (TYPE|HELP)/);
  // Aggregate counts per route template and status class, filled by the
  // access-line hook (the page was fetched three times above).
  const page2xx = metrics.match(/requests_total\{route="page",status="2xx"\} (\d+)/);
  assert.ok(page2xx && Number(page2xx[1]) >= 3, 'page requests are counted');
  assert.doesNotMatch(metrics, /127\.0\.0\.1|node|undici/i, 'no client data in metrics');
  const models = await call('/v1/models');
  const list = await models.json();
  assert.equal(list.object, 'list');
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].object, 'model');
  const nothing = await call('/no/such/thing');
  assert.equal(nothing.status, 404);
  const e = await nothing.json();
  assert.equal(e.error.type, 'invalid_request_error');
  assert.equal(typeof e.error.message, 'string');
});

test('OpenAI client: generation as b64_json and as url', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
  const models = await client.models.list();
  assert.equal(models.data.length, 1);

  const b64 = await client.images.generate({
    prompt: 'a red heart', n: 2, size: '64x64', response_format: 'b64_json', steps: 3, seed: 7,
  });
  assert.equal(b64.data.length, 2);
  assert.ok(b64.created > 0);
  for (const d of b64.data) assert.ok(MAGIC.png(Buffer.from(d.b64_json, 'base64')));

  const url = await client.images.generate({
    prompt: 'a blue square', size: '64x64', response_format: 'url', output_format: 'webp',
    steps: 2,
  });
  assert.equal(url.data.length, 1);
  assert.match(url.data[0].url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/jobs\/[\w-]+\/images\/0\.webp\?token=/);
  const img = await fetch(url.data[0].url);
  assert.equal(img.status, 200);
  assert.equal(img.headers.get('content-type'), 'image/webp');
  assert.ok(MAGIC.webp(Buffer.from(await img.arrayBuffer())));
});

test('OpenAI client: edit with two images, and errors the client surfaces', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
  const edit = await client.images.edit({
    image: [await toFile(fixture('orient_1.jpg'), 'a.jpg', { type: 'image/jpeg' }),
      await toFile(fixture('rgba.png'), 'b.png', { type: 'image/png' })],
    prompt: 'the two of them at the beach', size: '64x64', steps: 2,
  });
  assert.equal(edit.data.length, 1);
  assert.ok(MAGIC.png(Buffer.from(edit.data[0].b64_json, 'base64')));

  // Inpainting: one image and a mask of the same size (transparent = repaint).
  const { PNG } = await import('pngjs');
  const mask = new PNG({ width: 64, height: 32 });
  for (let i = 0; i < 64 * 32; i++) {
    mask.data[i * 4 + 3] = (i % 64) < 32 ? 0 : 255; // left half transparent
  }
  const inpaint = await client.images.edit({
    image: await toFile(fixture('orient_1.jpg'), 'a.jpg', { type: 'image/jpeg' }),
    mask: await toFile(PNG.sync.write(mask), 'mask.png', { type: 'image/png' }),
    prompt: 'a window on the left', size: '64x64', steps: 2, response_format: 'url',
  });
  assert.equal(inpaint.data.length, 1);
  const got = await fetch(inpaint.data[0].url);
  assert.equal(got.status, 200);
  assert.ok(MAGIC.png(Buffer.from(await got.arrayBuffer())));
  // A mask needs exactly one image.
  await assert.rejects(client.images.edit({
    image: [await toFile(fixture('orient_1.jpg'), 'a.jpg'), await toFile(fixture('gray.png'),
      'b.png')],
    mask: await toFile(PNG.sync.write(mask), 'mask.png'), prompt: 'x',
  }), (err) => err.status === 400 && err.param === 'mask');
  // A mask of another size is named with both sizes.
  const small = new PNG({ width: 32, height: 32 });
  await assert.rejects(client.images.edit({
    image: await toFile(fixture('orient_1.jpg'), 'a.jpg', { type: 'image/jpeg' }),
    mask: await toFile(PNG.sync.write(small), 'mask.png', { type: 'image/png' }), prompt: 'x',
  }), (err) => err.status === 400 && err.param === 'mask' &&
    /the mask is 32x32 but the image is 64x32/.test(err.message));

  await assert.rejects(client.images.generate({ prompt: 'x', n: 99 }), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.type, 'invalid_request_error');
    assert.equal(err.code, 'limit_exceeded', 'one code for every limit');
    assert.equal(err.param, 'n');
    assert.match(err.message, /n/);
    return true;
  });
  await assert.rejects(client.images.generate({ prompt: '' }), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.param, 'prompt');
    assert.match(err.message, /prompt/);
    return true;
  });
  await assert.rejects(client.images.edit({
    image: await toFile(Buffer.from('not an image at all, just words'), 'x.png'),
    prompt: 'x',
  }), (err) => {
    assert.equal(err.status, 415);
    assert.equal(err.param, 'image');
    return true;
  });
});

test('native job: create, status, events, downloads in three formats, delete', async () => {
  // A job ahead in the queue keeps this one waiting until its stream is
  // open, so every event is seen live, whatever the machine's load.
  const { json: blocker } = await createJob({ prompt: 'ahead', size: '64x64', steps: 40 });
  const { resp, json: job } = await createJob({ prompt: 'a lighthouse', size: '64x64', steps: 30,
    n: 1 });
  assert.equal(resp.status, 202);
  assert.match(job.id, /^[\w-]{16,}$/);
  assert.match(job.token, /^[\w-]{40,}$/);
  assert.equal(job.status_url, `/v1/jobs/${job.id}`);
  assert.equal(job.events_url, `/v1/jobs/${job.id}/events`);

  const ev = await waitDone(job);
  await call(`/v1/jobs/${blocker.id}`, { method: 'DELETE',
    headers: { 'X-Job-Token': blocker.token } });
  assert.equal(ev.status, 200);
  assert.equal(ev.events[0].event, 'queued', 'a waiting job first says where it is in line');
  assert.match(ev.headers.get('content-type'), /text\/event-stream/);
  assert.equal(ev.headers.get('cache-control'), 'no-store');
  assert.equal(ev.retry, 3000, 'the stream tells EventSource how soon to reconnect');
  const names = ev.events.map((e) => e.event);
  assert.equal(names.at(-1), 'done', names.join(','));
  const progress = ev.events.filter((e) => e.event === 'progress');
  assert.ok(progress.length >= 1, 'progress events arrive');
  const last = progress.at(-1).json;
  assert.equal(last.total, 30);
  assert.ok(last.step >= 1 && last.step <= last.total);
  const withPreview = progress.find((e) => e.json.preview);
  if (withPreview) assert.match(withPreview.json.preview, /^data:image\/png;base64,/);

  const st = await call(`/v1/jobs/${job.id}`, { headers: { Authorization: `Bearer ${job.token}` } });
  assert.equal(st.status, 200);
  const status = await st.json();
  assert.equal(status.status, 'done');
  assert.equal(status.images.length, 1);
  assert.ok(status.expires_at > Date.now() / 1000);

  for (const [ext, type, magic] of [['png', 'image/png', MAGIC.png],
    ['jpg', 'image/jpeg', MAGIC.jpeg], ['webp', 'image/webp', MAGIC.webp]]) {
    const r = await call(`/v1/jobs/${job.id}/images/0.${ext}`, {
      headers: { 'X-Job-Token': job.token },
    });
    assert.equal(r.status, 200, ext);
    assert.equal(r.headers.get('content-type'), type);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.ok(magic(Buffer.from(await r.arrayBuffer())), `${ext} magic bytes`);
  }

  // An image the job does not have: with the job's token the answer says
  // which images there are (without it, it is the one "no such job").
  for (const file of ['1.png', '15.webp', 'x.gif']) {
    const r = await call(`/v1/jobs/${job.id}/images/${file}`, {
      headers: { 'X-Job-Token': job.token },
    });
    assert.equal(r.status, 404, file);
    const e = (await r.json()).error;
    assert.equal(e.code, 'image_not_found', file);
    assert.match(e.message, /^no such image: this job has 1 image, numbered 0 to 0/, file);
  }

  const del = await call(`/v1/jobs/${job.id}`, {
    method: 'DELETE', headers: { 'X-Job-Token': job.token },
  });
  assert.equal(del.status, 200);
  const gone = await call(`/v1/jobs/${job.id}?token=${job.token}`);
  assert.equal(gone.status, 404);
  const img = await call(`/v1/jobs/${job.id}/images/0.png?token=${job.token}`);
  assert.equal(img.status, 404);
});

test('native job from multipart with a photo', async () => {
  const form = new FormData();
  form.append('prompt', 'me on the moon');
  form.append('size', '64x64');
  form.append('steps', '2');
  form.append('image', new Blob([fixture('orient_6.jpg')], { type: 'image/jpeg' }), 'p.jpg');
  const resp = await call('/v1/jobs', { method: 'POST', body: form });
  assert.equal(resp.status, 202, await resp.clone().text());
  const job = await resp.json();
  const ev = await waitDone(job);
  assert.equal(ev.events.at(-1).event, 'done');
});

test('a prompt over the token limit: 400 on the OpenAI route, a failed job with a code', async (t) => {
  if (!MODEL) {
    t.skip('the synthetic runner has no tokenizer (set TS_TEST_MODEL)');
    return;
  }
  // Within the 4000-byte limit, over the model's 600 tokens: only the engine can count.
  const prompt = 'red heart '.repeat(390);
  const r = await call('/v1/images/generations', { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt, steps: 1 }) });
  assert.equal(r.status, 400);
  const e = (await r.json()).error;
  assert.equal(e.code, 'limit_exceeded');
  assert.match(e.message, /longer than 600 tokens/);
  const { resp, json: job } = await createJob({ prompt, steps: 1 });
  assert.equal(resp.status, 202);
  const ev = await waitDone(job);
  const last = ev.events.at(-1);
  assert.equal(last.event, 'failed');
  assert.equal(JSON.parse(last.data).code, 'limit_exceeded');
  const st = await (await call(`/v1/jobs/${job.id}?token=${job.token}`)).json();
  assert.equal(st.status, 'failed');
  assert.equal(st.code, 'limit_exceeded');
  assert.match(st.message, /longer than 600 tokens/);
});

test('a missing or wrong token answers exactly like a job that never existed', async () => {
  const { json: job } = await createJob({ prompt: 'secret', size: '64x64', steps: 1 });
  await waitDone(job);
  const wrong = 'A'.repeat(job.token.length);
  const bodies = [];
  for (const [path, init] of [
    [`/v1/jobs/${job.id}`, {}],
    [`/v1/jobs/${job.id}`, { headers: { 'X-Job-Token': wrong } }],
    [`/v1/jobs/${job.id}?token=${wrong}`, {}],
    [`/v1/jobs/NeverExistedJobId12345`, { headers: { 'X-Job-Token': job.token } }],
    [`/v1/jobs/NeverExistedJobId12345?token=${wrong}`, {}],
    [`/v1/jobs/${job.id}/images/0.png?token=${wrong}`, {}],
    [`/v1/jobs/${job.id}/images/7.png?token=${wrong}`, {}],
    [`/v1/jobs/${job.id}/images/x.gif?token=${wrong}`, {}],
    [`/v1/jobs/${job.id}/events?token=${wrong}`, {}],
    [`/v1/jobs/${job.id}`, { method: 'DELETE', headers: { 'X-Job-Token': wrong } }],
  ]) {
    const r = await call(path, init);
    assert.equal(r.status, 404, path);
    bodies.push(Buffer.from(await r.arrayBuffer()));
  }
  for (const b of bodies) assert.ok(b.equals(bodies[0]), 'byte-identical 404 bodies');
  // The right token still works: nothing above touched the job.
  const ok = await call(`/v1/jobs/${job.id}?token=${job.token}`);
  assert.equal(ok.status, 200);
});

test('results expire at retention (test clock)', async () => {
  const { json: job } = await createJob({ prompt: 'ephemeral', size: '64x64', steps: 1 });
  await waitDone(job);
  const before = await call(`/v1/jobs/${job.id}?token=${job.token}`);
  const st = await before.json();
  assert.ok(st.expires_in > 0 && st.expires_in <= 24 * 3600);
  const adv = await call('/v1/test/clock', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ advance_ms: (st.expires_in + 5) * 1000 }),
  });
  assert.equal(adv.status, 200);
  const after = await call(`/v1/jobs/${job.id}?token=${job.token}`);
  assert.equal(after.status, 404);
  const img = await call(`/v1/jobs/${job.id}/images/0.png?token=${job.token}`);
  assert.equal(img.status, 404);
});

test('bad requests get one clear error shape', async () => {
  const cases = [
    [{ body: '{"prompt": ', headers: { 'Content-Type': 'application/json' } }, 400, /JSON/],
    [{ body: '[1,2]', headers: { 'Content-Type': 'application/json' } }, 400, /JSON object/],
    [{ body: JSON.stringify({ prompt: 'x', size: 'big' }),
      headers: { 'Content-Type': 'application/json' } }, 400, /size/],
    [{ body: JSON.stringify({ prompt: 'x', steps: 'many' }),
      headers: { 'Content-Type': 'application/json' } }, 400, /steps/],
    [{ body: JSON.stringify({ prompt: 'x'.repeat(5000) }),
      headers: { 'Content-Type': 'application/json' } }, 400, /prompt/],
    [{ body: 'prompt=x', headers: { 'Content-Type': 'text/plain' } }, 415, /json/i],
  ];
  for (const [init, status, re] of cases) {
    const r = await call('/v1/jobs', { method: 'POST', ...init });
    assert.equal(r.status, status, init.body.slice(0, 40));
    const e = await r.json();
    assert.match(e.error.message, re);
    assert.ok('type' in e.error && 'param' in e.error && 'code' in e.error);
  }
  // A wrong method says which ones the path takes, in Allow and in words.
  for (const [path, method, allow] of [['/v1/models', 'POST', 'GET, HEAD'],
    ['/v1/jobs', 'DELETE', 'POST'], ['/v1/jobs/someid', 'PUT', 'GET, HEAD, DELETE'],
    ['/v1/images/generations', 'GET', 'POST']]) {
    const wrongMethod = await call(path, { method });
    assert.equal(wrongMethod.status, 405, `${method} ${path}`);
    assert.equal(wrongMethod.headers.get('allow'), allow, `${method} ${path}`);
    const e = (await wrongMethod.json()).error;
    assert.equal(e.code, 'method_not_allowed');
    assert.equal(e.message, `this path does not accept ${method}; it accepts ${allow}`);
  }
});

test('seeds: 0 to 2^63-1 exactly, -1 for random, anything else named as out of range', async () => {
  const json = { 'Content-Type': 'application/json' };
  // Written as raw JSON text: JavaScript numbers cannot hold these exactly.
  for (const seed of ['9223372036854775807', '1125899906842627', '0']) {
    const r = await call('/v1/jobs', { method: 'POST', headers: json,
      body: `{"prompt":"a seed","size":"64x64","steps":1,"seed":${seed}}` });
    assert.equal(r.status, 202, seed);
    const job = await r.json();
    const text = await (await call(`/v1/jobs/${job.id}?token=${job.token}`)).text();
    assert.equal(text.match(/"seed":(\d+)/)[1], seed, 'the seed is used and reported exactly');
    await call(`/v1/jobs/${job.id}?token=${job.token}`, { method: 'DELETE' });
  }
  const random = await (await call('/v1/jobs', { method: 'POST', headers: json,
    body: '{"prompt":"a seed","size":"64x64","steps":1,"seed":-1}' })).json();
  const st = await (await call(`/v1/jobs/${random.id}?token=${random.token}`)).json();
  assert.ok(Number.isSafeInteger(st.seed) && st.seed >= 0, `random seed ${st.seed}`);
  await call(`/v1/jobs/${random.id}?token=${random.token}`, { method: 'DELETE' });

  const rule = /'seed' must be a whole number from 0 to 9223372036854775807, or -1 for a random seed/;
  for (const seed of ['9223372036854775808', '18446744073709551615', '-2', '1e30', '2.5']) {
    const r = await call('/v1/jobs', { method: 'POST', headers: json,
      body: `{"prompt":"a seed","size":"64x64","steps":1,"seed":${seed}}` });
    assert.equal(r.status, 400, seed);
    assert.match((await r.json()).error.message, rule, seed);
  }
  // A form sends text: past 2^63-1 it is refused, not clamped.
  const form = new FormData();
  form.append('prompt', 'a seed');
  form.append('seed', '99999999999999999999');
  const r = await call('/v1/jobs', { method: 'POST', body: form });
  assert.equal(r.status, 400);
  const e = (await r.json()).error;
  assert.equal(e.param, 'seed');
  assert.match(e.message, rule);
});

test('numbers as strings, unknown models and repeated fields are refused by name', async () => {
  const json = { 'Content-Type': 'application/json' };
  const models = await (await call('/v1/models')).json();
  const id = models.data[0].id;
  for (const [path, body, param, code, want] of [
    ['/v1/jobs', '{"prompt":"x","n":"2"}', 'n', 'invalid_argument',
      /^'n' must be a JSON number, not a string: write it without quotes$/],
    ['/v1/images/generations', '{"prompt":"x","steps":"3"}', 'steps', 'invalid_argument',
      /'steps' must be a JSON number/],
    ['/v1/images/generations', '{"prompt":"x","guidance_scale":"7"}', 'guidance_scale',
      'invalid_argument', /'guidance_scale' must be a JSON number/],
    ['/v1/images/generations', '{"prompt":"x","model":"dall-e-3"}', 'model', 'model_not_found',
      new RegExp(`^this server has no model 'dall-e-3'; it serves '${id}'`)],
    ['/v1/jobs', '{"prompt":"x","model":"gpt-image-1"}', 'model', 'model_not_found',
      /GET \/v1\/models lists it/],
    ['/v1/jobs', '{"prompt":"x","model":7}', 'model', 'invalid_argument', /'model' must be a string/],
    ['/v1/jobs', '{"prompt":"a","prompt":"b"}', null, 'invalid_format',
      /gives the same field twice \(near byte \d+\); give each field once/],
  ]) {
    const r = await call(path, { method: 'POST', headers: json, body });
    assert.equal(r.status, 400, body);
    const e = (await r.json()).error;
    assert.equal(e.param, param, body);
    assert.equal(e.code, code, body);
    assert.match(e.message, want, body);
  }
  // The listed id is accepted, through the official client too; a form's
  // numbers are text by nature and stay accepted.
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
  const ok = await client.images.generate({ prompt: 'a red heart', model: id, size: '64x64',
    steps: 1 });
  assert.equal(ok.data.length, 1);
  const form = new FormData();
  form.append('prompt', 'a form');
  form.append('n', '1');
  form.append('steps', '1');
  form.append('model', id);
  const r = await call('/v1/jobs', { method: 'POST', body: form });
  assert.equal(r.status, 202, await r.clone().text());
  const job = await r.json();
  await call(`/v1/jobs/${job.id}?token=${job.token}`, { method: 'DELETE' });
});

test('uploads: every orientation and colour kind accepted; broken ones refused', async () => {
  const accepted = ['orient_1.jpg', 'orient_2.jpg', 'orient_3.jpg', 'orient_4.jpg',
    'orient_5.jpg', 'orient_6.jpg', 'orient_7.jpg', 'orient_8.jpg', 'gray.jpg', 'gray.png',
    'palette_trns.png', 'rgb16.png', 'cmyk_plain.jpg', 'cmyk_adobe.jpg', 'rgba.png',
    'alpha_lossy.webp'];
  const send = async (name, bytes) => {
    const form = new FormData();
    form.append('prompt', 'test');
    form.append('size', '64x64');
    form.append('steps', '1');
    form.append('image', new Blob([bytes]), name);
    const r = await call('/v1/jobs', { method: 'POST', body: form });
    const j = await r.json();
    if (r.status === 202) {
      await waitDone(j);
      await call(`/v1/jobs/${j.id}`, { method: 'DELETE', headers: { 'X-Job-Token': j.token } });
    }
    return [r.status, j];
  };
  for (const name of accepted) {
    const [status, j] = await send(name, fixture(name));
    assert.equal(status, 202, `${name}: ${JSON.stringify(j)}`);
  }
  for (const [name, want] of [['trunc_orient_1.jpg', 400], ['trunc_interlaced.png', 400],
    ['random.bin', 415], ['svg_named.png', 415], ['html_named.png', 415],
    ['huge_dims.png', 413]]) {
    const [status, j] = await send(name, fixture(name));
    assert.equal(status, want, `${name}: ${JSON.stringify(j)}`);
    assert.equal(j.error.param, 'image');
    assert.ok(j.error.message.length > 10);
  }
  // A body past the server's limit is cut off with 413 before it is read.
  const big = Buffer.alloc(70 * 1024 * 1024, 0x41);
  const r = await call('/v1/jobs', {
    method: 'POST', body: big, headers: { 'Content-Type': 'multipart/form-data; boundary=x' },
  }).catch((e) => e);
  if (!(r instanceof Error)) assert.equal(r.status, 413);
});

// The width and height a PNG's header declares.
function pngSize(buf) {
  return `${buf.readUInt32BE(16)}x${buf.readUInt32BE(20)}`;
}

test('every answer says the delivered size and the size the model generated', async () => {
  // The synthetic runner's native size is 64x64: 128x128 is generated at
  // 64x64 and upscaled, 64x64 is generated as it is.
  const dir = tempDir();
  const s2 = await startServer({ dataDir: dir + '/data',
    env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' } });
  try {
    const client = new OpenAI({ baseURL: s2.url + '/v1', apiKey: 'unused', maxRetries: 0 });
    const big = await client.images.generate({ prompt: 'a red heart', size: '128x128',
      response_format: 'b64_json', steps: 1 });
    assert.equal(big.size, '128x128', 'OpenAI "size" is the delivered size');
    assert.equal(big.native_size, '64x64');
    assert.equal(big.upscaled, true);
    assert.equal(pngSize(Buffer.from(big.data[0].b64_json, 'base64')), '128x128');
    const small = await client.images.generate({ prompt: 'a red heart', size: '64x64',
      response_format: 'url', steps: 1 });
    assert.equal(small.size, '64x64');
    assert.equal(small.native_size, '64x64');
    assert.equal(small.upscaled, false);

    const resp = await fetch(`${s2.url}/v1/jobs`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse', size: '128x128', steps: 1 }) });
    assert.equal(resp.status, 202);
    const job = await resp.json();
    assert.equal(job.size, '128x128');
    assert.equal(job.native_size, '64x64');
    assert.equal(job.upscaled, true);
    const ev = await readEvents(`${s2.url}/v1/jobs/${job.id}/events?token=${job.token}`,
      (e) => ['done', 'failed', 'refused', 'cancelled'].includes(e.event));
    const done = ev.events.at(-1);
    assert.equal(done.event, 'done');
    assert.equal(done.json.size, '128x128');
    assert.equal(done.json.native_size, '64x64');
    assert.equal(done.json.upscaled, true);
    const st = await (await fetch(`${s2.url}/v1/jobs/${job.id}?token=${job.token}`)).json();
    assert.equal(st.size, '128x128');
    assert.equal(st.native_size, '64x64');
    assert.equal(st.upscaled, true);
    assert.deepEqual([st.width, st.height, st.native_width, st.native_height], [128, 128, 64, 64]);
    const img = await fetch(`${s2.url}/v1/jobs/${job.id}/images/0.png?token=${job.token}`);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get('x-togethershot-native-size'), '64x64');
    assert.equal(img.headers.get('x-togethershot-upscaled'), 'true');
    assert.equal(pngSize(Buffer.from(await img.arrayBuffer())), '128x128');
  } finally {
    await s2.stop();
    cleanup(dir);
  }
});

test('a job still queued when the retention ends fails, saying so', async () => {
  const dir = tempDir();
  const s2 = await startServer({ dataDir: dir + '/data', args: ['--retention', '10m'],
    env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' } });
  const post = (path, body) => fetch(s2.url + path, { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  try {
    // The one worker is busy for several seconds with 4 x 100 steps.
    const blocker = await (await post('/v1/jobs', { prompt: 'ahead', size: '64x64', n: 4,
      steps: 100 })).json();
    const waiting = await (await post('/v1/jobs', { prompt: 'waits', size: '64x64',
      steps: 1 })).json();
    const sync = post('/v1/images/generations', { prompt: 'waits too', size: '64x64', steps: 1 });
    for (let i = 0; i < 100; i++) {
      if ((await (await fetch(s2.url + '/healthz')).json()).queued === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const events = readEvents(`${s2.url}/v1/jobs/${waiting.id}/events?token=${waiting.token}`,
      (e) => ['done', 'failed', 'refused', 'cancelled'].includes(e.event));

    const adv = await post('/v1/test/clock', { advance_ms: 11 * 60 * 1000 });
    assert.equal(adv.status, 200);

    const st = await fetch(`${s2.url}/v1/jobs/${waiting.id}?token=${waiting.token}`);
    assert.equal(st.status, 200, 'the job is still there to say what happened');
    const status = await st.json();
    assert.equal(status.status, 'failed');
    assert.equal(status.code, 'expired');
    assert.match(status.message, /expired before it could run/);
    assert.match(status.message, /retention of 10 minutes/);
    const ev = (await events).events.at(-1);
    assert.equal(ev.event, 'failed');
    assert.equal(ev.json.code, 'expired');
    const answer = await sync;
    assert.equal(answer.status, 503);
    const e = (await answer.json()).error;
    assert.equal(e.code, 'expired');
    assert.match(e.message, /retention of 10 minutes/);
    assert.match(answer.headers.get('retry-after') || '', /^\d+$/);

    // The running job was not cut off: it is still there, and still running.
    const run = await fetch(`${s2.url}/v1/jobs/${blocker.id}?token=${blocker.token}`);
    assert.equal(run.status, 200);
    assert.equal((await run.json()).status, 'running');
    await fetch(`${s2.url}/v1/jobs/${blocker.id}?token=${blocker.token}`, { method: 'DELETE' });
  } finally {
    await s2.stop();
    cleanup(dir);
  }
});

test('security headers on every response, and no Set-Cookie anywhere', async () => {
  assert.ok(seen.length > 30, 'the sweep covers many responses');
  for (const [what, resp] of seen) checkSecurityHeaders(assert, resp, what);
  for (const [what, resp] of seen) {
    if (what.startsWith('GET /v1/') || what.startsWith('POST /v1/') ||
        what.startsWith('DELETE /v1/')) {
      assert.equal(resp.headers.get('cache-control'), 'no-store', `${what}: no-store`);
    }
  }
});
