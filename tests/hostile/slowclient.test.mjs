// Slow clients (POLICY.md P11): 200 connections trickle a byte at a time,
// half of them through their request headers and half through a request
// body. While they do, /healthz must still answer (within a generous
// deadline; no timing is asserted beyond "it answered"), and the server's
// own timeouts must drop them while they are still sending: a trickled body
// at the whole-request deadline, trickled headers at the header deadline
// (the same time, counted from the connection's start). Test mode shortens
// the timeouts (3 s idle, 4 s per request). Every loop here is bounded in
// count and time.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { request, startServer } from './server.mjs';

const N = 200;
const TICK_MS = 250;      // one byte per connection per tick
const TRICKLE_MS = 15000; // header tricklers give up (and stall) after this
const DEADLINE_MS = 30000; // everything must be over by then

function trickler(port, localAddress, head, bodyBytes) {
  const c = { closedByServer: false, closedAt: 0, sent: 0, stop: false };
  const sock = net.connect({ host: '127.0.0.1', port, localAddress });
  c.sock = sock;
  const t0 = Date.now();
  let pending = head;
  const sendHeadAtOnce = bodyBytes > 0;
  sock.on('connect', () => {
    if (sendHeadAtOnce) {
      sock.write(pending);
      pending = '';
    }
    c.timer = setInterval(() => {
      if (c.stop || sock.destroyed) return;
      if (pending.length) {
        sock.write(pending[0]);
        pending = pending.slice(1);
      } else if (sendHeadAtOnce) {
        sock.write('a');
      }
      c.sent++;
      if (!sendHeadAtOnce && Date.now() - t0 >= TRICKLE_MS) c.stop = true;
    }, TICK_MS);
  });
  sock.on('data', () => {});
  const closed = () => {
    if (c.closedAt) return;
    c.closedAt = Date.now();
    clearInterval(c.timer);
  };
  sock.on('end', () => { c.closedByServer = true; closed(); });
  sock.on('error', () => { c.closedByServer = true; closed(); }); // reset by the server
  sock.on('close', closed);
  return c;
}

test('200 trickling clients: /healthz answers throughout, and the timeouts drop them all',
  async (t) => {
    const srv = await startServer({
      args: ['--test-mode', '--max-connections', '400'],
      env: {
        TOGETHERSHOT_TEST_RUNNER: 'synthetic',
        TOGETHERSHOT_TEST_IDLE_TIMEOUT_S: '3',
        TOGETHERSHOT_TEST_REQUEST_TIMEOUT_S: '4',
      },
    });
    const conns = [];
    let passed = false;
    try {
      const head = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' +
        'z'.repeat(200) + '\r\n\r\n';
      const post = 'POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n';
      // One client address each (127.0.0.2 ...), as many clients would be;
      // the per-client connection cap is tested elsewhere.
      for (let i = 0; i < N; i++) {
        const addr = `127.0.${1 + Math.floor((i + 2) / 250)}.${(i + 2) % 250 + 1}`;
        conns.push(i < N / 2 ? trickler(srv.port, addr, head, 0)
          : trickler(srv.port, addr, post, 100000));
      }
      const start = Date.now();

      // While they trickle, the cheap route still answers.
      for (const at of [1000, 3000, 5000]) {
        await new Promise((r) => setTimeout(r, at - (Date.now() - start)));
        const h = await request(`${srv.url}/healthz`, { timeoutMs: 15000 });
        assert.equal(h.status, 200, `/healthz at ${at} ms`);
      }

      // Wait (bounded) until the server has closed every one of them.
      while (Date.now() - start < DEADLINE_MS && conns.some((c) => !c.closedAt)) {
        await new Promise((r) => setTimeout(r, 200));
      }
      const bodies = conns.slice(N / 2);
      const heads = conns.slice(0, N / 2);
      const open = conns.filter((c) => !c.closedAt).length;
      t.diagnostic(`closed by the server: ${conns.filter((c) => c.closedByServer).length}` +
        ` of ${N}; body tricklers closed after ${Math.max(...bodies.map((c) => c.closedAt -
        start))} ms at most, header tricklers after ${Math.max(...heads.map((c) => c.closedAt -
        start))} ms at most`);
      assert.equal(open, 0, 'every trickling connection was dropped');
      assert.ok(conns.every((c) => c.closedByServer), 'the server closed them, not the client');
      // A trickled body is cut off while it is still arriving.
      assert.ok(bodies.every((c) => !c.stop), 'body tricklers were still sending when cut off');
      assert.ok(heads.every((c) => !c.stop), 'header tricklers were still sending when cut off');

      const h = await request(`${srv.url}/healthz`, { timeoutMs: 15000 });
      assert.equal(h.status, 200, '/healthz afterwards');
      assert.ok(srv.alive(), 'the server is still running');
      passed = true;
    } finally {
      for (const c of conns) {
        c.stop = true;
        clearInterval(c.timer);
        c.sock.destroy();
      }
      if (!passed) await srv.stop();
    }
    // The watchdog and 200 closing connections: a clean stop, no sanitizer report.
    const logs = srv.logs;
    const { code, signal } = await srv.stop();
    assert.equal(signal, null, 'not killed by a signal');
    assert.equal(code, 0, 'exit status 0 after SIGTERM');
    assert.deepEqual(logs.filter((l) => /Sanitizer|runtime error:/.test(l)), [],
      'no sanitizer report');
  });
