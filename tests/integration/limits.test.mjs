// Abuse limits seen from outside (P11, P12): a client over its rate gets 429
// with Retry-After, a full queue 503 with Retry-After, an oversized body 413
// before it is read, all in the one error shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, cleanup, tempDir, readEvents } from './helpers.mjs';

const json = { 'Content-Type': 'application/json' };

test('rate limit: the expensive bucket runs dry with 429 and Retry-After', async () => {
  const root = tempDir();
  // Later flags win: one generation per minute, burst one.
  const srv = await startServer({ dataDir: root + '/data',
    args: ['--rate-expensive', '1', '--burst-expensive', '1'] });
  try {
    const body = JSON.stringify({ prompt: 'one', size: '64x64', steps: 1 });
    const first = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body });
    assert.equal(first.status, 202);
    const second = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body });
    assert.equal(second.status, 429);
    assert.match(second.headers.get('retry-after'), /^\d+$/);
    assert.ok(Number(second.headers.get('retry-after')) >= 1);
    const e = await second.json();
    assert.equal(e.error.type, 'rate_limit_error');
    assert.match(e.error.message, /too many requests/);
    // Cheap routes still answer.
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  } finally {
    await srv.stop();
    cleanup(root);
  }
});

test('a full queue answers 503 with Retry-After; the body limit answers 413 at once', async () => {
  const root = tempDir();
  const srv = await startServer({ dataDir: root + '/data',
    args: ['--queue-size', '1', '--max-body-bytes', '200000', '--max-upload-bytes', '100000'],
    env: { TOGETHERSHOT_TEST_HEARTBEAT_MS: '150' } });
  try {
    // One running (many steps), one waiting, the third does not fit.
    const long = JSON.stringify({ prompt: 'long', size: '64x64', steps: 100 });
    const a = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body: long });
    assert.equal(a.status, 202);
    const ja = await a.json();
    // Wait until the first job runs, so the queue holds exactly the second.
    await readEvents(`${srv.url}/v1/jobs/${ja.id}/events?token=${ja.token}`,
      (ev) => ev.event === 'progress' || ev.event === 'done');
    const b = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body: long });
    assert.equal(b.status, 202);
    const c = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body: long });
    assert.equal(c.status, 503);
    assert.match(c.headers.get('retry-after') || '', /^\d+$/);
    assert.match((await c.json()).error.message, /queue|busy|full/i);
    // The waiting job's stream: its position, then keep-alive comments while
    // it waits, until it starts.
    const jb = await b.json();
    const wait = await readEvents(`${srv.url}/v1/jobs/${jb.id}/events?token=${jb.token}`,
      (ev) => ev.event === 'running' || ev.event === 'progress');
    assert.equal(wait.events[0].event, 'queued');
    assert.equal(wait.events[0].json.position, 1);
    assert.ok(wait.comments >= 1, `keep-alive comments while queued: ${wait.comments}`);
    for (const j of [ja, jb]) {
      await fetch(`${srv.url}/v1/jobs/${j.id}`, { method: 'DELETE',
        headers: { 'X-Job-Token': j.token } });
    }

    // Declared too big: refused from the headers, the body is never sent.
    const status = await new Promise((resolve, reject) => {
      const { port } = new URL(srv.url);
      const sock = net.connect(Number(port), '127.0.0.1', () => {
        sock.write('POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          'Content-Length: 999999999\r\n\r\n');
      });
      let got = '';
      sock.on('data', (d) => { got += d; });
      sock.on('end', () => resolve(got));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
      setTimeout(() => { sock.destroy(); resolve(got); }, 10000);
    });
    assert.match(status, /^HTTP\/1\.1 413 /);
    assert.match(status, /"message":"the request body is larger than/);

    // Streamed past the limit without a length: cut off at the limit.
    const big = new Uint8Array(1024 * 1024);
    const stream = new ReadableStream({
      start(ctl) { for (let i = 0; i < 4; i++) ctl.enqueue(big); ctl.close(); },
    });
    const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: json, body: stream,
      duplex: 'half' }).catch((err) => err);
    if (!(r instanceof Error)) assert.equal(r.status, 413);
  } finally {
    await srv.stop();
    cleanup(root);
  }
});

test('a client that stalls mid-request is dropped after the idle timeout', async () => {
  const root = tempDir();
  const srv = await startServer({ dataDir: root + '/data',
    env: { TOGETHERSHOT_TEST_IDLE_TIMEOUT_S: '1' } });
  try {
    const { port } = new URL(srv.url);
    const start = Date.now();
    const closed = await new Promise((resolve, reject) => {
      const sock = net.connect(Number(port), '127.0.0.1', () => {
        // Headers never finished: a slowloris client.
        sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      });
      const timer = setTimeout(() => { sock.destroy(); resolve(false); }, 15000);
      sock.on('close', () => { clearTimeout(timer); resolve(true); });
      sock.on('error', reject);
    });
    assert.ok(closed, 'the server closed the stalled connection');
    assert.ok(Date.now() - start >= 500, 'not before the timeout');
    // And it still serves everyone else.
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  } finally {
    await srv.stop();
    cleanup(root);
  }
});
