// Portrait rights end to end (POLICY.md P13, P16) with the real face check:
// a person enrolled with `togethershot gallery add` is refused through both
// APIs, by photo and by name, while other people and look-alike names pass;
// refused uploads leave nothing behind; the running server follows gallery
// changes (SIGHUP and the file's change); /metrics counts refusals without
// names; no log line carries a name, an alias or a prompt; /privacy tells
// whether the check is on.
//
// Photos are cut from tests/fixtures/vision/group3.webp (three different
// people; face-api's descriptors in group3.golden.json put them 0.62-0.72
// apart, above the 0.5 threshold) with ImageMagick, which scripts/setup.sh
// installs. Each face check costs about a second here, so the test sends only
// a handful of photos.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, startServer, cleanup, tempDir, readEvents, filesUnder } from './helpers.mjs';

const MODELS = process.env.TOGETHERSHOT_FACE_MODELS ||
  fileURLToPath(new URL('../../models/face', import.meta.url));
const VISION = fileURLToPath(new URL('../fixtures/vision', import.meta.url));

// The protected person (the left-hand woman of group3) and a second person
// (the right-hand one) enrolled later to watch the gallery change.
const NAME = 'Amélie Strand';
const ALIAS = 'Mimi Strand';
const SECOND = 'Bruno Keller';
// Everything that must never reach a log line or a metric, in folded forms too.
const SECRETS = ['Amélie', 'Amelie', 'Strand', 'Mimi', 'Bruno', 'Keller'];

const REFUSED_PROMPTS = [
  'a photo of AM3LIE  STR@ND at the beach', // case, digits and symbols for letters
  'amelie-strand riding a bicycle', // no accent, a hyphen for the space
  'M1m1 Str4nd in the rain', // the alias, with digits for letters
];
const ACCEPTED_PROMPTS = [
  'Amélie Strandberg on a sailing boat', // a longer surname is someone else
  'a strand of hair, macro photo', // the surname alone is no alias
];

function cut(src, geometry, out) {
  const r = spawnSync('convert', [join(VISION, src), '-crop', geometry, '+repage', out]);
  assert.equal(r.status, 0, `ImageMagick (scripts/setup.sh installs it) could not cut ${src}: ` +
    (r.error?.message ?? r.stderr));
  return out;
}

function gallery(file, ...args) {
  const r = spawnSync(BIN, ['gallery', ...args.slice(0, 1), '--gallery', file, '--models', MODELS,
    ...args.slice(1)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `gallery ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function done(ev) {
  return ['done', 'failed', 'refused', 'cancelled'].includes(ev.event);
}

// A refusal in OpenAI's error shape that names no one and creates no job.
async function expectRefusal(resp, what) {
  const text = await resp.text();
  assert.equal(resp.status, 422, `${what}: ${text}`);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ['error'], `${what}: only the error object`);
  assert.equal(body.error.code, 'portrait_rights', what);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 10, `${what}: the message says what happened`);
  assert.ok('type' in body.error && 'param' in body.error, `${what}: OpenAI's error fields`);
  for (const s of SECRETS) {
    assert.ok(!text.toLowerCase().includes(s.toLowerCase()), `${what}: the answer names ${s}`);
  }
  assert.equal(body.id, undefined);
  assert.equal(body.token, undefined);
}

function photoForm(bytes, fields) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('image', new Blob([bytes], { type: 'image/png' }), 'photo.png');
  return form;
}

async function submitJob(url, body) {
  const init = body instanceof FormData
    ? { method: 'POST', body }
    : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  return fetch(`${url}/v1/jobs`, init);
}

// Submits, expects 202, and waits for the job's end; returns the final event.
async function runJob(url, body, what) {
  const r = await submitJob(url, body);
  assert.equal(r.status, 202, `${what}: ${await r.clone().text()}`);
  const job = await r.json();
  const ev = await readEvents(`${url}/v1/jobs/${job.id}/events?token=${job.token}`, done);
  const last = ev.events.at(-1);
  // Free the results at once, so the data folder holds only live items.
  await fetch(`${url}/v1/jobs/${job.id}?token=${job.token}`, { method: 'DELETE' });
  return last;
}

async function metric(url, reason) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^togethershot_refusals_total\\{reason="${reason}"\\} (\\d+)$`,
    'm'));
  assert.ok(m, `/metrics has no refusal counter for ${reason}`);
  return { n: Number(m[1]), text };
}

async function privacy(url) {
  const r = await fetch(`${url}/privacy`);
  assert.equal(r.status, 200);
  return r.text();
}

// Waits (bounded) until /privacy reports the expected gallery size.
async function waitForGallery(url, persons, how) {
  const want = `on: protecting ${persons} person${persons === 1 ? '' : 's'}`;
  for (let i = 0; i < 150; i++) {
    if ((await privacy(url)).includes(want)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`the server did not pick up the gallery change (${how}) within 15 s`);
}

// Waits (bounded) until more than `seen` log lines match re.
async function waitForLog(srv, re, seen, how) {
  for (let i = 0; i < 150; i++) {
    if (srv.logs.filter((l) => re.test(l)).length > seen) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no new log line like ${re} after ${how} within 15 s`);
}

test('portrait-rights refusals with the real face check', async (t) => {
  assert.ok(existsSync(join(MODELS, 'ssd_mobilenetv1_model.bin')),
    `face models missing in ${MODELS}: run scripts/setup.sh`);
  const root = tempDir('ts-portrait-');
  // The gallery names people: it goes whatever the outcome.
  t.after(() => cleanup(root));
  const galleryFile = join(root, 'gallery.json');
  const enrol = cut('group3.webp', '150x200+60+40', join(root, 'enrol.png')); // her face alone
  const second = cut('group3.webp', '150x200+360+10', join(root, 'second.png')); // the right-hand face
  const others = readFileSync(cut('group3.webp', '312x260+200+0', join(root, 'others.png')));
  const group = readFileSync(join(VISION, 'group3.webp')); // her, with two others

  const added = gallery(galleryFile, 'add', '--name', NAME, '--alias', ALIAS, enrol);
  assert.match(added, /added 1 face descriptor/);
  assert.match(gallery(galleryFile, 'list'), /Strand/);

  const srv = await startServer({ dataDir: join(root, 'data'),
    args: ['--portrait-check', '--gallery', galleryFile, '--face-models', MODELS,
      '--log-level', 'debug'] });
  const expect = { portrait_prompt: 0, portrait_upload: 0 };
  try {
    assert.match(await privacy(srv.url), /on: protecting 1 person</);

    // 1. Her photo through the OpenAI edits route and the native job API.
    const before = filesUnder(srv.dataDir).map(([p]) => p);
    assert.equal(before.length, 0, 'nothing is stored before the first job');
    const edit = await fetch(`${srv.url}/v1/images/edits`, { method: 'POST',
      body: photoForm(group, { prompt: 'make it a watercolour', size: '64x64', steps: '1',
        response_format: 'b64_json' }) });
    await expectRefusal(edit, 'edits with her photo');
    expect.portrait_upload++;
    assert.deepEqual(filesUnder(srv.dataDir), [], 'the refused upload left nothing');

    const native = await submitJob(srv.url, photoForm(group, { prompt: 'a watercolour',
      size: '64x64', steps: '1' }));
    await expectRefusal(native, 'native job with her photo');
    expect.portrait_upload++;
    assert.deepEqual(filesUnder(srv.dataDir), [], 'the refused upload left nothing');

    // 2. Her name and alias, however written; look-alike names pass.
    for (const prompt of REFUSED_PROMPTS) {
      await expectRefusal(await submitJob(srv.url, { prompt, size: '64x64', steps: 1 }),
        `native prompt "${prompt}"`);
      expect.portrait_prompt++;
    }
    await expectRefusal(await fetch(`${srv.url}/v1/images/generations`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: REFUSED_PROMPTS[0], size: '64x64', steps: 1 }) }),
    'generations with her name');
    expect.portrait_prompt++;
    for (const prompt of ACCEPTED_PROMPTS) {
      const last = await runJob(srv.url, { prompt, size: '64x64', steps: 1 }, prompt);
      assert.equal(last.event, 'done', `"${prompt}" is not her: ${JSON.stringify(last.json)}`);
    }

    // 3. A photo of the two other people in the same picture passes.
    const ok = await runJob(srv.url, photoForm(others, { prompt: 'a watercolour', size: '64x64',
      steps: '1' }), 'photo of the others');
    assert.equal(ok.event, 'done', JSON.stringify(ok.json));
    assert.deepEqual(filesUnder(srv.dataDir), [], 'deleted jobs leave nothing');

    // 4. Aggregate counts only.
    for (const [reason, n] of Object.entries(expect)) {
      const m = await metric(srv.url, reason);
      assert.equal(m.n, n, `refusals counted for ${reason}`);
      for (const s of SECRETS) assert.ok(!m.text.includes(s), `/metrics names ${s}`);
    }

    // 5. SIGHUP re-reads the gallery even when the file did not change (the
    // poll would not), and does not stop the server.
    const loaded = /portrait gallery loaded; protected persons: 1$/;
    srv.child.kill('SIGHUP');
    await waitForLog(srv, loaded, srv.logs.filter((l) => loaded.test(l)).length, 'SIGHUP');

    // The gallery changes under the running server. Removed + SIGHUP: her
    // name and her photo pass.
    assert.match(gallery(galleryFile, 'remove', NAME), /removed/);
    srv.child.kill('SIGHUP');
    await waitForGallery(srv.url, 0, 'SIGHUP');
    const byName = await runJob(srv.url, { prompt: REFUSED_PROMPTS[0], size: '64x64', steps: 1 },
      'her name after removal');
    assert.equal(byName.event, 'done');
    const byFace = await runJob(srv.url, photoForm(group, { prompt: 'a watercolour',
      size: '64x64', steps: '1' }), 'her photo after removal');
    assert.equal(byFace.event, 'done', JSON.stringify(byFace.json));

    // Another person added, no signal: the server notices the file changed,
    // and the photo that passed in step 3 (which shows him) is now refused,
    // which also proves the faces in it were found and compared.
    gallery(galleryFile, 'add', '--name', SECOND, second);
    await waitForGallery(srv.url, 1, 'the file changed');
    await expectRefusal(await submitJob(srv.url, photoForm(others, { prompt: 'a watercolour',
      size: '64x64', steps: '1' })), 'photo of the newly protected person');
    expect.portrait_upload++;
    assert.equal((await metric(srv.url, 'portrait_upload')).n, expect.portrait_upload);
    assert.deepEqual(filesUnder(srv.dataDir), []);

    // 6. P16: the page discloses the check and what it does.
    const page = await privacy(srv.url);
    assert.match(page, /Public figures are protected/);
    assert.match(page, /checked for faces/);
    assert.match(page, /prompts for their names/);
    assert.match(page, /erases it/);
    for (const s of SECRETS) assert.ok(!page.includes(s), `/privacy names ${s}`);
  } finally {
    await srv.stop();
  }
  // No log line carries a name, an alias or a prompt.
  assert.ok(srv.logs.some((l) => /protected persons: 0/.test(l)), 'the reload was logged');
  for (const line of srv.logs) {
    for (const s of SECRETS) {
      assert.ok(!line.toLowerCase().includes(s.toLowerCase()), `log line names ${s}: ${line}`);
    }
    for (const p of [...REFUSED_PROMPTS, ...ACCEPTED_PROMPTS, 'watercolour']) {
      assert.ok(!line.includes(p), `log line carries a prompt: ${line}`);
    }
  }
});

test('/privacy says the face check is off when it is', async () => {
  const root = tempDir('ts-portrait-');
  const srv = await startServer({ dataDir: join(root, 'data') });
  try {
    const page = await privacy(srv.url);
    assert.match(page, /<td id="portrait">off<\/td>/);
    assert.match(page, /portrait-rights check is off on this server/);
    assert.doesNotMatch(page, /Public figures are protected/);
  } finally {
    await srv.stop();
  }
  cleanup(root);
});
