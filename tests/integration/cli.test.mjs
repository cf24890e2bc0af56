// The command line as a person meets it: every bad value is named with what
// is allowed, messages say each thing once, and the CLI takes the same
// values as the API (prompt, guidance, seed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, MODEL, tempDir, cleanup } from './helpers.mjs';

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
