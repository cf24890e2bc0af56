// Shared helpers of the integration tests: start the real `togethershot serve`
// on a free loopback port with a temporary data folder, collect every log
// line it prints, and stop it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

export const BIN = process.env.TS_BIN;
export const FIXTURES = process.env.TS_FIXTURES;
export const MODEL = process.env.TS_TEST_MODEL || '';

if (!BIN) throw new Error('TS_BIN must name the togethershot binary (set by CTest)');

// The small test model when it is there; else the synthetic test runner
// (test mode only), so the HTTP layer is testable before model files exist.
export function modelArgs() {
  if (MODEL && existsSync(MODEL)) return { args: ['--model', MODEL], env: {} };
  return { args: [], env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' } };
}

export function tempDir(prefix = 'ts-it-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startServer({ dataDir, args = [], env = {}, listen = '127.0.0.1:0' } = {}) {
  const m = modelArgs();
  const dir = dataDir ?? join(tempDir(), 'data');
  // Generous rate limits: the tests send many requests from one address (the
  // limiter itself has its own test).
  const argv = ['serve', '--listen', listen, '--data-dir', dir, '--test-mode',
    '--workers', '1', '--rate-expensive', '6000', '--burst-expensive', '500',
    '--rate-cheap', '60000', '--burst-cheap', '5000', ...m.args, ...args];
  const child = spawn(BIN, argv, {
    env: { ...process.env, ...m.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never leave a server behind, whatever happens to the test.
  process.on('exit', () => child.kill('SIGKILL'));
  const logs = [];
  const stdout = [];
  let buf = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      logs.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stdout.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not print its URL in 60 s:\n' +
      logs.join('\n'))), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      stdout.push(d);
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl).trim());
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error('server exited with ' + code + ' before listening:\n' + logs.join('\n')));
    });
  });
  const base = url.replace(/\/$/, '');
  return {
    child, url: base, dataDir: dir, logs, stdout,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await once(child, 'exit');
      if (buf) logs.push(buf);
      // A graceful stop must end with 0; anything else (a crash, a sanitizer
      // report) fails the test that started the server.
      if (signal === 'SIGTERM' && code !== 0) {
        throw new Error(`serve exited with ${code} on SIGTERM:\n${logs.slice(-40).join('\n')}`);
      }
      return code;
    },
  };
}

// Every file under dir (recursively), as [path, bytes].
export function filesUnder(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) out.push(...filesUnder(p));
    else out.push([p, readFileSync(p)]);
  }
  return out;
}

export function fixture(name) {
  return readFileSync(join(FIXTURES, 'image', name));
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Reads a server-sent event stream until `until(event)` is true or it ends.
export async function readEvents(url, until, { timeoutMs = 60000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const resp = await fetch(url, { signal: ctl.signal, headers: { Accept: 'text/event-stream' } });
  const events = [];
  const headers = resp.headers;
  if (resp.status !== 200) {
    clearTimeout(timer);
    return { status: resp.status, headers, events, body: await resp.text() };
  }
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  let comments = 0;
  let retry;
  try {
    outer: for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      let i;
      while ((i = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, i);
        text = text.slice(i + 2);
        const ev = { event: 'message', data: '' };
        let isComment = true;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          isComment = false;
          const c = line.indexOf(':');
          const k = c < 0 ? line : line.slice(0, c);
          const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (k === 'event') ev.event = v;
          else if (k === 'data') ev.data += v;
          else if (k === 'id') ev.id = v;
          else if (k === 'retry') ev.retry = Number(v);
        }
        if (isComment) { comments++; continue; }
        if (ev.retry !== undefined) retry = ev.retry;
        if (!ev.data) continue; // a block without data dispatches nothing (retry: only)
        ev.json = JSON.parse(ev.data);
        events.push(ev);
        if (until(ev)) break outer;
      }
    }
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return { status: resp.status, headers, events, comments, retry };
}

export const MAGIC = {
  png: (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  jpeg: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  webp: (b) => b.subarray(0, 4).toString('latin1') === 'RIFF' &&
    b.subarray(8, 12).toString('latin1') === 'WEBP',
};

// The security headers every response must carry (P6, P8, P9).
export function checkSecurityHeaders(assert, resp, what, { tls = false } = {}) {
  const h = resp.headers;
  const csp = h.get('content-security-policy') || '';
  assert.match(csp, /default-src 'self'/, `${what}: CSP default-src`);
  assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`);
  assert.doesNotMatch(csp, /https?:/, `${what}: CSP names no other origin`);
  assert.equal(h.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.equal(h.get('referrer-policy'), 'no-referrer', `${what}: referrer policy`);
  assert.equal(h.get('x-frame-options'), 'DENY', `${what}: frame denial`);
  assert.equal(h.get('set-cookie'), null, `${what}: no Set-Cookie`);
  if (tls) assert.match(h.get('strict-transport-security') || '', /max-age=\d+/, `${what}: HSTS`);
}
