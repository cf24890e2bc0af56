// The command line as a person meets it: every bad value is named with what
// is allowed, messages say each thing once, and the CLI takes the same
// values as the API (prompt, guidance, seed).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { BIN, MODEL, tempDir, cleanup, startServer } from './helpers.mjs';

// Where commands that are expected to fail would write: never the tree.
const SCRATCH = tempDir('ts-cli-scratch-');
const X = join(SCRATCH, 'x.png');
after(() => cleanup(SCRATCH));

// Runs `togethershot ...args`; returns { status, stdout, stderr }.
function run(args, opts = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 120000, ...opts });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

// generate with the small test model (it is fast) into dir.
function generate(dir, prompt, ...more) {
  return run(['generate', prompt, '-o', join(dir, 'out.png'), '--model', MODEL, '--steps', '1',
    ...more]);
}

function count(text, needle) {
  return text.split(needle).length - 1;
}

test('seeds: 0 to 2^63-1 or -1 (random), as in the API', { skip: !MODEL }, () => {
  const dir = tempDir('ts-cli-');
  try {
    const random = generate(dir, 'a red heart', '--seed', '-1');
    assert.equal(random.status, 0, random.stderr);
    const seed = Number(random.stderr.match(/seed (\d+)\)/)[1]);
    assert.ok(Number.isSafeInteger(seed), `random seeds stay below 2^53: ${seed}`);
    const top = generate(dir, 'a red heart', '--seed', '9223372036854775807');
    assert.equal(top.status, 0, top.stderr);
    assert.match(top.stderr, /seed 9223372036854775807\)/);
    for (const bad of ['-2', '9223372036854775808', '18446744073709551615', 'x']) {
      const r = generate(dir, 'a red heart', '--seed', bad);
      assert.equal(r.status, 2, bad);
      assert.match(r.stderr, new RegExp(`invalid value '${bad}' for --seed: give a whole number ` +
        'from 0 to 9223372036854775807, or -1 for a random seed'), bad);
    }
  } finally {
    cleanup(dir);
  }
});

test('an image that cannot be read is named once', { skip: !MODEL }, () => {
  const dir = tempDir('ts-cli-');
  try {
    const notImage = join(dir, 'notes.png');
    writeFileSync(notImage, 'a shopping list, not a picture\n');
    const missing = join(dir, 'missing.jpg');
    for (const photo of [notImage, missing]) {
      const r = generate(dir, 'a red heart', '--image', photo);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(count(r.stderr, photo), 1, `generate names ${photo} once: ${r.stderr}`);
      const g = run(['gallery', 'add', '--gallery', join(dir, 'gallery.json'), '--name',
        'Someone', photo]);
      assert.equal(g.status, 1, g.stderr);
      assert.equal(count(g.stderr, photo), 1, `gallery names ${photo} once: ${g.stderr}`);
    }
  } finally {
    cleanup(dir);
  }
});

test('a broken .safetensors file is reported as broken, even without a tokenizer', () => {
  const dir = tempDir('ts-cli-');
  try {
    const file = join(dir, 'model.safetensors');
    // A header length far past the end of the file: no valid checkpoint.
    const bytes = Buffer.alloc(64, 0x20);
    bytes.writeBigUInt64LE(1n << 40n, 0);
    writeFileSync(file, bytes);
    const r = run(['generate', 'a red heart', '-o', join(dir, 'out.png'), '--model', file]);
    assert.equal(r.status, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /tokenizer/, r.stderr);
    assert.match(r.stderr, /model\.safetensors|header|safetensors/i, r.stderr);
  } finally {
    cleanup(dir);
  }
});

test('bad values are named with what is allowed (bench, generate, serve)', () => {
  const cases = [
    [['bench', '--steps', '0'], /invalid value '0' for --steps: give a whole number from 1 to 150/],
    [['bench', '--reps', '99'], /invalid value '99' for --reps: give a whole number from 1 to 20/],
    [['bench', '--threads', '-1'], /'-1' for --threads: give a whole number from 0 to 1024/],
    [['bench', '--size', '4x4'], /'4x4' for --size: give WIDTHxHEIGHT, each side from 8 to/],
    [['bench', '--gflop-unet', 'lots'], /'lots' for --gflop-unet: give the part's GFLOP/],
    [['bench', '--steps'], /missing value for '--steps'/],
    [['bench', 'now'], /unexpected argument 'now'/],
    [['generate', 'x', '-o', X, '--steps', '0'], /'0' for --steps: give a whole number from 1 to 150/],
    [['generate', 'x', '-o', X, '--strength', '2'], /'2' for --strength: give a number from 0 to 1/],
    [['generate', 'x', '-o', X, '--size', 'big'], /'big' for --size: give WIDTHxHEIGHT/],
    [['generate', 'x', '-o', X, '--sampler', 'fast'], /'fast' for --sampler: give one of euler, euler_a/],
    [['generate', 'x', '-o', X, '-n', '99'], /'99' for -n: give a whole number from 1 to 16/],
    [['serve', '--workers', 'many'], /--workers 'many' is not a whole number; give 1 to 64/],
    [['serve', '--queue-size', '-1'], /--queue-size '-1' is not a whole number; give 1 to 100000/],
    // Names the gallery could not screen for are refused before any photo is read.
    [['gallery', 'add', '--gallery', '/nonexistent-ts/g.json', '--name', ' ', '/nonexistent.jpg'],
      /invalid value ' ' for --name: a name must contain letters/],
    [['gallery', 'add', '--gallery', '/nonexistent-ts/g.json', '--name', 'Jane', '--alias', '!!',
      '/nonexistent.jpg'], /invalid value '!!' for --alias: a name must contain letters/],
  ];
  for (const [args, want] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
  }
});

test('the CLI takes prompts and guidance as the API does', async () => {
  for (const [prompt, want] of [['', /the prompt is empty: describe the image to make/],
    ['  \t ', /the prompt is empty: describe the image to make/],
    ['x'.repeat(4001), /prompt is 4001 bytes; the limit is 4000/]]) {
    const r = run(['generate', prompt, '-o', X]);
    assert.equal(r.status, 2, JSON.stringify(prompt.slice(0, 10)));
    assert.match(r.stderr, want);
  }
  // Invalid UTF-8 cannot travel in a JavaScript string: let the shell make it.
  const bad = spawnSync('bash', ['-c', `"$0" generate "$(printf 'caf\\xe9')" -o "$1"`, BIN, X],
    { encoding: 'utf8' });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /the prompt is not valid UTF-8 text/);
  const g = run(['generate', 'a red heart', '-o', X, '--guidance', '51']);
  assert.equal(g.status, 2);
  assert.match(g.stderr, /'51' for --guidance: give a number from 0 to 50/);

  // The API refuses the same things with the same words.
  const dir = tempDir('ts-cli-');
  const srv = await startServer({ dataDir: join(dir, 'data'),
    env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' } });
  try {
    const post = (body) => fetch(`${srv.url}/v1/jobs`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    for (const [body, param, want] of [
      [{ prompt: '  \t ' }, 'prompt', /^the prompt is empty: describe the image to make$/],
      [{ prompt: 'x', guidance: 51 }, 'guidance', /from 0 to 50/],
      [{ prompt: 'x', negative_prompt: 'y'.repeat(4001) }, 'negative_prompt',
        /negative prompt is 4001 bytes; the limit is 4000/],
    ]) {
      const r = await post(body);
      assert.equal(r.status === 400 || r.status === 413, true, JSON.stringify(body).slice(0, 40));
      const e = (await r.json()).error;
      assert.equal(e.param, param);
      assert.match(e.message, want);
    }
    const form = new FormData();
    form.append('prompt', new Blob([Buffer.from([0x63, 0x61, 0x66, 0xe9])]));
    const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', body: form });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /not valid UTF-8/);
  } finally {
    await srv.stop();
    cleanup(dir);
  }
});

test('the file generate writes is named once, also on a terminal and in scripts/run.sh',
  { skip: !MODEL }, () => {
    const dir = tempDir('ts-cli-');
    try {
      const out = join(dir, 'red-heart.png');
      // `script` gives the command a terminal, as a person at a shell sees it.
      const r = spawnSync('script', ['-qec', `"${BIN}" generate "a red heart" --seed 1 ` +
        `-o "${out}" --model "${MODEL}" --steps 1`, '/dev/null'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal(count(r.stdout, out), 1, `named once on a terminal:\n${r.stdout}`);
      assert.match(r.stdout, /16x16, seed 1|\d+x\d+, seed 1/);
      // Piped, stdout has the name and stderr says what was written.
      const piped = generate(dir, 'a red heart', '--seed', '1');
      assert.equal(piped.stdout.trim(), join(dir, 'out.png'));
      // The main script relies on generate's own line and adds none.
      const runSh = readFileSync(new URL('../../scripts/run.sh', import.meta.url), 'utf8');
      const mentions = runSh.split('\n').filter((l) => l.includes('out/red-heart.png') &&
        !l.trimStart().startsWith('#'));
      assert.equal(mentions.length, 1, `run.sh names the image only in the command:\n${mentions}`);
      assert.match(mentions[0], /togethershot generate /);
    } finally {
      cleanup(dir);
    }
  });

const FACE_MODELS = process.env.TOGETHERSHOT_FACE_MODELS ||
  fileURLToPath(new URL('../../models/face', import.meta.url));
const VISION = fileURLToPath(new URL('../fixtures/vision', import.meta.url));

// One face cut from a fixture photo with ImageMagick (scripts/setup.sh installs it).
function face(geometry, out) {
  const r = spawnSync('convert', [join(VISION, 'group3.webp'), '-crop', geometry, '+repage', out]);
  assert.equal(r.status, 0, `convert: ${r.stderr}`);
  return out;
}

test('gallery: an empty list says so, the same photo is not stored twice, one reload per change',
  { skip: !existsSync(join(FACE_MODELS, 'ssd_mobilenetv1_model.bin')) }, async () => {
    const dir = tempDir('ts-cli-');
    const file = join(dir, 'gallery.json');
    const gallery = (...args) => run(['gallery', args[0], '--gallery', file, '--models',
      FACE_MODELS, ...args.slice(1)]);
    try {
      const empty = gallery('list');
      assert.equal(empty.status, 0);
      assert.equal(empty.stdout, `the gallery ${file} is empty; add people with ` +
        "'togethershot gallery add'\n");

      const a = face('150x200+60+40', join(dir, 'a.png'));
      const b = face('150x200+360+10', join(dir, 'b.png'));
      assert.match(gallery('add', '--name', 'Person A', a).stdout, /added 1 face descriptor/);
      const again = gallery('add', '--name', 'Person A', a);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /a\.png is already in the gallery \(a photo of "Person A"\); skipped/);
      assert.match(again.stdout, /^nothing was added: every photo is already in /);
      const twice = gallery('add', '--name', 'Person B', b, b);
      assert.equal(twice.status, 0, twice.stderr);
      assert.match(twice.stderr, /b\.png is the same photo as one before it; skipped/);
      assert.match(twice.stdout, /added 1 face descriptor for "Person B"/);
      const list = gallery('list').stdout;
      assert.match(list, /^Person A {2}1 descriptor$/m);
      assert.match(list, /^Person B {2}1 descriptor$/m);

      // A change followed by SIGHUP (what the docs tell operators to do) is
      // one reload, logged once.
      const srv = await startServer({ dataDir: join(dir, 'data'), args: ['--portrait-check',
        '--gallery', file, '--face-models', FACE_MODELS] });
      try {
        const loaded = (l) => /portrait gallery loaded/.test(l);
        assert.equal(srv.logs.filter(loaded).length, 1);
        assert.match(gallery('remove', 'Person B').stdout, /removed/);
        srv.child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 5000)); // two of the 2 s file checks
        const after = srv.logs.filter(loaded);
        assert.equal(after.length, 2, `one reload for one change:\n${after.join('\n')}`);
        assert.match(after[1], /protected persons: 1$/);
      } finally {
        await srv.stop();
      }
    } finally {
      cleanup(dir);
    }
  });
