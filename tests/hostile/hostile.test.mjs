// The hostile corpus against the real server (POLICY.md P11): every case in
// cases.json is sent to a running `togethershot serve`, and each must get
// exactly its expected status and error (OpenAI's error shape, the message
// naming the problem). Afterwards the server must still be alive and
// answering, hold nothing in its data folder, have no prompt in its logs,
// and its memory must be back near where it started.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES, HERE, filesUnder, multipart, rawRequest, request, startServer,
} from './server.mjs';

const cases = JSON.parse(readFileSync(join(HERE, 'cases.json'), 'utf8'));
// Sent as the prompt of every request; it must never appear in a log line (P1, P7).
const CANARY = 'hostile-canary-prompt-5d1e';
const GOOD_PNG = readFileSync(join(FIXTURES, 'image', 'gray.png'));
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let srv;
let baselineKiB;

function readCase(file) {
  if (file.startsWith('fixture:')) return readFileSync(join(FIXTURES, 'image', file.slice(8)));
  return readFileSync(join(HERE, file));
}

// Nothing that came from the upload may come back: only our own encoding.
function assertOurImage(buf, what) {
  assert.ok(buf.subarray(0, 8).equals(PNG_MAGIC), `${what}: a PNG of ours`);
  const text = buf.toString('latin1').toLowerCase();
  for (const bad of ['<html', '<script', '<svg', 'alert(']) {
    assert.ok(!text.includes(bad), `${what}: no '${bad}' in the image`);
  }
}

function checkAnswer(r, expect, what) {
  const shown = r.body ? r.body.subarray(0, 300).toString('latin1') : '(no body)';
  assert.equal(r.status, expect.status, `${what}: status; body ${shown}`);
  if (expect.status < 400 || expect.ours === false) return;
  const json = r.json ?? (() => { try { return JSON.parse(r.body); } catch { return null; } })();
  assert.ok(json && json.error && typeof json.error.message === 'string',
    `${what}: OpenAI error shape; body ${shown}`);
  if (expect.error) {
    assert.ok(json.error.message.includes(expect.error),
      `${what}: message '${json.error.message}' should contain '${expect.error}'`);
  }
  if (expect.param !== undefined) assert.equal(json.error.param, expect.param, `${what}: param`);
  if (expect.code !== undefined) assert.equal(json.error.code, expect.code, `${what}: code`);
  assert.ok(!json.error.message.includes(CANARY), `${what}: the message quotes no prompt`);
}

before(async () => {
  // A short idle timeout (test mode) so the cases that stall are dropped
  // within seconds.
  srv = await startServer({ args: ['--test-mode'], env: { TOGETHERSHOT_TEST_IDLE_TIMEOUT_S: '3' } });
  // Warm up the paths the cases use, then take the memory baseline.
  const g = await request(`${srv.url}/v1/images/generations`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: CANARY }),
  });
  assert.equal(g.status, 200, 'a plain generation works: ' + g.body.subarray(0, 200));
  const mp = multipart([{ name: 'prompt', data: CANARY },
    { name: 'image', data: GOOD_PNG, filename: 'a.png', type: 'image/png' }]);
  const e = await request(`${srv.url}/v1/images/edits`, {
    method: 'POST', headers: { 'Content-Type': mp.type }, body: mp.body,
  });
  assert.equal(e.status, 200, 'a plain edit works: ' + e.body.subarray(0, 200));
  baselineKiB = srv.rssKiB();
});

after(async () => {
  if (srv) await srv.stop();
});

// ------------------------------------------------------------------ uploads
for (const c of cases.uploads) {
  test(`upload ${c.file}: ${c.why}`, async () => {
    const mp = multipart([{ name: 'prompt', data: CANARY },
      { name: 'image', data: readCase(c.file), filename: 'upload.png', type: 'image/png' }]);
    const r = await request(`${srv.url}/v1/images/edits`, {
      method: 'POST', headers: { 'Content-Type': mp.type }, body: mp.body,
    });
    checkAnswer(r, c.expect, c.file);
    if (c.expect.accepted) {
      assert.equal(r.json.data.length, 1, `${c.file}: one image back`);
      assertOurImage(Buffer.from(r.json.data[0].b64_json, 'base64'), c.file);
    }
  });
}

// Polyglots that decode as images: what is served back is only ever our own
// re-encoded image, with an exact image type and nosniff.
for (const file of ['files/polyglot_png_html.png', 'fixture:text_bomb.png']) {
  test(`served back: ${file} comes back as our own image only`, async () => {
    const mp = multipart([{ name: 'prompt', data: CANARY },
      { name: 'image', data: readCase(file), filename: 'x.html', type: 'text/html' }]);
    const c = await request(`${srv.url}/v1/jobs`, {
      method: 'POST', headers: { 'Content-Type': mp.type }, body: mp.body,
    });
    assert.equal(c.status, 202, 'job accepted: ' + c.body.subarray(0, 200));
    const { id, token } = c.json;
    const auth = { 'X-Job-Token': token };
    let st;
    for (let i = 0; i < 600; i++) {
      st = await request(`${srv.url}/v1/jobs/${id}`, { headers: auth });
      if (!['queued', 'running'].includes(st.json.status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(st.json.status, 'done', 'the job finished: ' + st.body.subarray(0, 300));
    for (const [ext, type] of [['png', 'image/png'], ['jpg', 'image/jpeg'],
      ['webp', 'image/webp']]) {
      const d = await request(`${srv.url}/v1/jobs/${id}/images/0.${ext}`, { headers: auth });
      assert.equal(d.status, 200, `download .${ext}`);
      assert.equal(d.headers.get('content-type'), type, `exact type for .${ext}`);
      assert.equal(d.headers.get('x-content-type-options'), 'nosniff', `nosniff for .${ext}`);
      if (ext === 'png') assertOurImage(d.body, `download .${ext}`);
      assert.ok(!d.body.toString('latin1').toLowerCase().includes('<html'), `.${ext}: no HTML`);
    }
    const del = await request(`${srv.url}/v1/jobs/${id}`, { method: 'DELETE', headers: auth });
    assert.equal(del.status, 200, 'deleted');
  });
}

// ------------------------------------------------------------------ requests
const good = { name: 'image', data: GOOD_PNG, filename: 'a.png', type: 'image/png' };
const prompt = { name: 'prompt', data: CANARY };
const generated = {
  deep_json: () => ({ path: '/v1/images/generations', type: 'application/json',
    body: '['.repeat(100000) + ']'.repeat(100000) }),
  prompt_1mb_json: () => ({ path: '/v1/images/generations', type: 'application/json',
    body: JSON.stringify({ prompt: CANARY + 'a'.repeat(1 << 20) }) }),
  prompt_1mb_form: () => multipart([{ name: 'prompt', data: 'a'.repeat(1000000) }, good]),
  form_prompt_bad_utf8: () => multipart([{ name: 'prompt', data: Buffer.from([0x61, 0xff, 0xfe]) },
    good]),
  parts_10000: () => multipart([prompt, good,
    ...Array.from({ length: 10000 }, (_, i) => ({ name: `f${i}`, data: 'v' }))]),
  never_closes: () => multipart([prompt, good], undefined, { close: false }),
  five_images: () => multipart([prompt, ...Array(5).fill({ ...good, name: 'image[]' })]),
  two_masks: () => multipart([prompt, good, { ...good, name: 'mask' }, { ...good, name: 'mask' }]),
  filename_10000: () => multipart([prompt, { ...good, filename: 'A'.repeat(10000) }]),
  filename_nul: () => multipart([prompt, { ...good, filename: Buffer.from('a\0b.png', 'latin1') }]),
  filename_dotdot: () => multipart([prompt, { ...good, filename: '../../../etc/passwd' }]),
  filename_rlo: () => multipart([prompt, { ...good, filename: '\u202egnp.exe' }]),
  filename_inject: () => multipart([prompt, { ...good, filename: 'a"; name="prompt' }]),
  filename_crlf: () => multipart([prompt, { ...good, filename: 'a\r\n\r\n<html>' }]),
  multipart_with_image: () => ({ ...multipart([prompt, good]), path: '/v1/images/generations' }),
  mask_huge: () => multipart([prompt, good, { ...good, name: 'mask',
    data: readCase('fixture:huge_dims.png') }]),
  mask_html: () => multipart([prompt, good, { ...good, name: 'mask',
    data: readCase('fixture:html_named.png') }]),
  image4_hostile: () => multipart([prompt, ...Array(3).fill({ ...good, name: 'image[]' }),
    { ...good, name: 'image[]', data: readCase('fixture:scans_many.jpg') }]),
  mask_two_images: () => multipart([prompt, { ...good, name: 'image[]' },
    { ...good, name: 'image[]' }, { ...good, name: 'mask' }]),
  jobs_five_images: () => ({ ...multipart([prompt, ...Array(5).fill({ ...good, name: 'image[]' })]),
    path: '/v1/jobs' }),
  bom: () => json('\ufeff' + JSON.stringify({ prompt: CANARY })),
  comment: () => json(`{"prompt":"${CANARY}"/* hi */}`),
  keys_50k: () => json(JSON.stringify({
    ...Object.fromEntries(Array.from({ length: 50000 }, (_, i) => [`k${i}`, 1])), prompt: CANARY,
  })),
  numbers_400k: () => json(`{"prompt":"${CANARY}","a":[${Array(400000).fill(1).join(',')}]}`),
  key_1mb: () => json(`{"prompt":"${CANARY}","${'k'.repeat(1 << 20)}":1}`),
  key_1mb_less: () => json(`{"prompt":"${CANARY}","${'k'.repeat((1 << 20) - 100)}":1}`),
  multipart_case: () => {
    const mp = multipart([prompt, good]);
    return { body: mp.body, type: mp.type.replace('multipart/form-data', 'Multipart/Form-Data') };
  },
  boundary_inside: () => multipart([{ name: 'prompt', data: CANARY + ' --hOsTiLeBoUnDaRy' }, good]),
};

function json(body) {
  return { path: '/v1/images/generations', type: 'application/json', body };
}

for (const c of cases.requests) {
  test(`request: ${c.name}`, async () => {
    let path = c.path;
    let headers = { ...(c.headers || {}) };
    let body;
    if (c.gen) {
      const g = generated[c.gen]();
      path = g.path || c.path || '/v1/images/edits';
      headers['Content-Type'] = g.type;
      body = g.body;
    } else if (c.body_hex !== undefined) {
      body = Buffer.from(c.body_hex, 'hex');
    } else {
      body = c.body;
    }
    const r = await request(`${srv.url}${path}`, { method: c.method, headers, body });
    checkAnswer(r, c.expect, c.name);
    if (c.expect.status === 200) assertOurImage(Buffer.from(r.json.data[0].b64_json, 'base64'),
      c.name);
  });
}

// ------------------------------------------------------------------ raw HTTP
// "{TEXT*N}" in a raw case stands for TEXT repeated N times.
function expand(s) {
  return s.replace(/\{([^{}]*)\*(\d+)\}/g, (_, t, n) => t.repeat(Number(n)));
}
const rawGenerated = {
  chunked_over_limit: () => 'POST /v1/images/generations HTTP/1.1\r\nHost: h\r\n' +
    'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
    ('100000\r\n' + 'a'.repeat(0x100000) + '\r\n').repeat(2) + '0\r\n\r\n',
};

for (const c of cases.raw) {
  test(`raw: ${c.name}`, async () => {
    const text = c.gen ? rawGenerated[c.gen]() : expand(c.raw);
    const r = await rawRequest(srv.port, Buffer.from(text, 'latin1'));
    assert.ok(!r.timedOut || r.status, `${c.name}: an answer, not a hang`);
    checkAnswer(r, c.expect, c.name);
  });
}

// The server closes these at once, or (when libmicrohttpd notices the
// client's half-close only at its next timeout) at the idle timeout.
test('raw: a chunked body that never ends is dropped when the client stops', async () => {
  const head = 'POST /v1/images/generations HTTP/1.1\r\nHost: h\r\n' +
    'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
  const r = await rawRequest(srv.port, Buffer.from(head + ('4000\r\n' + 'a'.repeat(0x4000) +
    '\r\n').repeat(100), 'latin1'), { halfClose: true, timeoutMs: 20000 });
  assert.ok(r.closed && !r.timedOut, 'the server closed the connection');
});

test('raw: a body shorter than its Content-Length is dropped when the client stops', async () => {
  const r = await rawRequest(srv.port, Buffer.from('POST /v1/images/generations HTTP/1.1\r\n' +
    'Host: h\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt":',
  'latin1'), { halfClose: true, timeoutMs: 20000 });
  assert.ok(r.closed && !r.timedOut, 'the server closed the connection');
});

// ------------------------------------------------------------------ afterwards
test('afterwards: alive, answering, nothing kept, no prompt logged, memory near baseline',
  async (t) => {
    assert.ok(srv.alive(), 'the server is still running');
    const h = await request(`${srv.url}/healthz`, { timeoutMs: 10000 });
    assert.equal(h.status, 200, '/healthz answers');
    // Jobs answered with b64_json are destroyed as their answer is queued;
    // give the workers a moment, then nothing may remain.
    let left = filesUnder(srv.dataDir);
    for (let i = 0; i < 100 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = filesUnder(srv.dataDir);
    }
    assert.deepEqual(left, [], 'the data folder holds nothing');
    assert.equal(JSON.parse(h.body).queued, 0, 'no job waits');
    assert.ok(!srv.logs.some((l) => l.includes(CANARY)), 'no log line holds a prompt');
    // Memory: freed buffers may stay in the allocator's arenas, so allow
    // generous slack; a leak of the big cases (megabyte bodies, bombs, 56
    // uploads) would be far above it. Checked against the process's own
    // number, never a timing.
    const now = srv.rssKiB();
    const slack = 256 * 1024;
    t.diagnostic(`RSS: baseline ${baselineKiB} KiB, after every case ${now} KiB`);
    assert.ok(now <= baselineKiB + slack,
      `RSS ${now} KiB should be within ${slack} KiB of the baseline ${baselineKiB} KiB`);
  });

test('afterwards: the server stops cleanly, with no sanitizer report', async () => {
  const logs = srv.logs;
  const { code, signal } = await srv.stop();
  srv = null;
  assert.equal(signal, null, 'not killed by a signal');
  assert.equal(code, 0, 'exit status 0 after SIGTERM');
  const reports = logs.filter((l) => /Sanitizer|runtime error:/.test(l));
  assert.deepEqual(reports, [], 'no AddressSanitizer, LeakSanitizer or UBSan report');
});
