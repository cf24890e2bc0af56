// Privacy promises visible from outside: nothing a client sends reaches a log
// line or the data folder in the clear (P1, P2, P7), and a restart leaves
// nothing of an earlier process behind (P4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, cleanup, tempDir, fixture, readEvents, filesUnder } from './helpers.mjs';

function done(ev) {
  return ['done', 'failed', 'refused', 'cancelled'].includes(ev.event);
}

test('a marker sent everywhere appears in no log line and no stored byte', async () => {
  const root = tempDir();
  const srv = await startServer({ dataDir: root + '/data', args: ['--log-level', 'debug'] });
  const marker = 'MRK' + randomBytes(12).toString('hex');
  const hdrs = {
    'User-Agent': `agent-${marker}`,
    'X-Forwarded-For': `203.0.113.9, ${marker}`,
    Referer: `http://example.invalid/${marker}`,
    'X-Marker': marker,
  };
  let snapshots = [];
  const snap = () => snapshots.push(...filesUnder(srv.dataDir));
  try {
    // A photo whose bytes carry the marker (appended after the image data).
    const photo = Buffer.concat([fixture('orient_1.jpg'), Buffer.from(marker)]);
    const form = new FormData();
    form.append('prompt', `a portrait of ${marker}`);
    form.append('negative_prompt', `no ${marker}`);
    form.append('size', '64x64');
    form.append('steps', '3');
    form.append('image', new Blob([photo], { type: 'image/jpeg' }), `${marker}.jpg`);
    const r = await fetch(`${srv.url}/v1/jobs?${marker}=${marker}`, {
      method: 'POST', body: form, headers: hdrs,
    });
    assert.equal(r.status, 202, await r.clone().text());
    const job = await r.json();
    snap(); // while queued or running: uploads are in the store
    const ev = await readEvents(`${srv.url}/v1/jobs/${job.id}/events?token=${job.token}&m=${marker}`,
      (e) => { snap(); return done(e); });
    assert.equal(ev.events.at(-1).event, 'done');
    snap();
    // JSON route, marker in the path and the prompt.
    await fetch(`${srv.url}/v1/images/generations/${marker}`, { method: 'POST', headers: hdrs });
    const g = await fetch(`${srv.url}/v1/images/generations?x=${marker}`, {
      method: 'POST', headers: { ...hdrs, 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: `sunset ${marker}`, size: '64x64', steps: 1,
        response_format: 'url', user: marker }),
    });
    assert.equal(g.status, 200);
    snap();
    await fetch(`${srv.url}/v1/jobs/${job.id}/images/0.png?token=${job.token}&${marker}`,
      { headers: hdrs });
    await fetch(`${srv.url}/${marker}`, { headers: hdrs });
    await fetch(`${srv.url}/v1/jobs/${marker}?token=${marker}`, { headers: hdrs });
  } finally {
    await srv.stop();
  }
  assert.ok(srv.logs.length > 5, 'the server logged its requests');
  // The access line names the route template, the status and the time.
  assert.ok(srv.logs.some((l) => / http +r=[0-9a-f]{8} +POST \/v1\/jobs 202 \d+ms/.test(l)),
    srv.logs.join('\n'));
  assert.ok(srv.logs.some((l) => /GET \/v1\/jobs\/:id\/images\/:file 200 /.test(l)));
  assert.ok(srv.logs.some((l) => /GET \(no route\) 404 /.test(l)));
  for (const line of srv.logs) {
    assert.ok(!line.includes(marker), `log line carries the marker: ${line}`);
    assert.doesNotMatch(line, /203\.0\.113\.9|127\.0\.0\.1|agent-/, `log line: ${line}`);
  }
  for (const chunk of srv.stdout) assert.ok(!chunk.includes(marker));
  assert.ok(snapshots.length > 0, 'the data folder held encrypted items while the job ran');
  const needle = Buffer.from(marker);
  for (const [path, bytes] of snapshots) {
    assert.ok(!path.includes(marker), `file name carries the marker: ${path}`);
    assert.equal(bytes.indexOf(needle), -1, `${path} holds the marker in the clear`);
  }
  assert.equal(filesUnder(srv.dataDir).length, 0, 'nothing left after a clean stop');
  cleanup(root);
});

test('a restart on the same data folder wipes what the earlier process left', async () => {
  const root = tempDir();
  const dataDir = root + '/data';
  const first = await startServer({ dataDir });
  const r = await fetch(`${first.url}/v1/jobs`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'kept?', size: '64x64', steps: 1 }),
  });
  const job = await r.json();
  await readEvents(`${first.url}/v1/jobs/${job.id}/events?token=${job.token}`, done);
  const left = filesUnder(dataDir);
  assert.ok(left.length >= 1, 'a result is stored (encrypted) in the data folder');
  // A crash: no chance to clean up.
  await first.stop('SIGKILL');
  assert.equal(filesUnder(dataDir).length, left.length, 'the files survived the crash');

  const second = await startServer({ dataDir });
  try {
    const names = new Set(filesUnder(dataDir).map(([p]) => p));
    for (const [p] of left) assert.ok(!names.has(p), `${p} was removed at start`);
    const old = await fetch(`${second.url}/v1/jobs/${job.id}?token=${job.token}`);
    assert.equal(old.status, 404);
    const img = await fetch(`${second.url}/v1/jobs/${job.id}/images/0.png?token=${job.token}`);
    assert.equal(img.status, 404);
  } finally {
    assert.equal(await second.stop(), 0);
  }
  cleanup(root);
});
