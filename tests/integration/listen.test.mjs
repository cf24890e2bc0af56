// Listening on IPv6 loopback, and a graceful stop on SIGINT as on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { startServer, cleanup, tempDir, filesUnder } from './helpers.mjs';

async function haveIPv6() {
  const s = net.createServer();
  try {
    s.listen(0, '::1');
    await once(s, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}

test('serves on [::1] and stops cleanly on SIGINT', async (t) => {
  if (!(await haveIPv6())) {
    t.skip('no IPv6 loopback here');
    return;
  }
  const root = tempDir();
  const srv = await startServer({ dataDir: root + '/data', listen: '[::1]:0' });
  assert.match(srv.url, /^http:\/\/\[::1\]:\d+$/);
  const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'over v6', size: '64x64', steps: 1 }) });
  assert.equal(r.status, 202);
  const job = await r.json();
  for (let i = 0; i < 100; i++) {
    const st = await (await fetch(`${srv.url}/v1/jobs/${job.id}?token=${job.token}`)).json();
    if (st.status === 'done') break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(filesUnder(srv.dataDir).length >= 1, 'a result is stored');
  const code = await srv.stop('SIGINT');
  assert.equal(code, 0);
  assert.equal(filesUnder(srv.dataDir).length, 0, 'the store is wiped at a graceful stop');
  assert.ok(srv.logs.some((l) => /stopping \(SIGINT\)/.test(l)));
  cleanup(root);
});

test('result URLs say https only when a trusted proxy says the client used it', async () => {
  const gen = async (url, headers) => {
    const r = await fetch(`${url}/v1/images/generations`, { method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ prompt: 'a red heart', steps: 1, response_format: 'url' }) });
    assert.equal(r.status, 200);
    return (await r.json()).data[0].url;
  };
  const roots = [tempDir(), tempDir()];
  // The loopback peer is the TLS proxy in front of this server.
  const behind = await startServer({ dataDir: roots[0] + '/data',
    args: ['--trusted-proxies', '127.0.0.1/32'] });
  const open = await startServer({ dataDir: roots[1] + '/data' });
  try {
    const host = new URL(behind.url).host;
    assert.equal(new URL(await gen(behind.url, { 'X-Forwarded-Proto': 'https' })).protocol,
      'https:', 'a token must not be handed out in an http URL behind a TLS proxy');
    assert.equal(new URL(await gen(behind.url, {})).protocol, 'http:');
    assert.equal(new URL(await gen(behind.url, {})).host, host);
    // From a peer that is not a trusted proxy the header means nothing.
    assert.equal(new URL(await gen(open.url, { 'X-Forwarded-Proto': 'https' })).protocol,
      'http:');
  } finally {
    await behind.stop();
    await open.stop();
    roots.forEach(cleanup);
  }
});
