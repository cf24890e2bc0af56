// Starts the real `togethershot serve` for the hardening tests: a free
// loopback port, a temporary data folder, the tiny test model (or the
// synthetic test runner when the model is absent), and every log line kept
// so a test can check what was (not) logged. Also: raw socket requests and
// the server's resident memory.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.TS_BIN;
export const FIXTURES = process.env.TS_FIXTURES;
export const HERE = new URL('.', import.meta.url).pathname;
if (!BIN) throw new Error('TS_BIN must name the togethershot binary (set by CTest)');

// The tiny SD 1.x fixture generates a 64x64 image in well under a second.
export function modelArgs() {
  const model = process.env.TS_TEST_MODEL || join(FIXTURES || '', 'engine', 'tiny-sd1');
  if (existsSync(model)) return { args: ['--model', model], env: {} };
  return { args: ['--test-mode'], env: { TOGETHERSHOT_TEST_RUNNER: 'synthetic' } };
}

// Rate limits are generous unless a test passes its own (flags given later win).
export async function startServer({ args = [], env = {}, rate = true } = {}) {
  const m = modelArgs();
  const root = mkdtempSync(join(tmpdir(), 'ts-hostile-'));
  const dataDir = join(root, 'data');
  const rates = rate
    ? ['--rate-expensive', '60000', '--burst-expensive', '10000', '--rate-cheap', '600000',
      '--burst-cheap', '100000']
    : [];
  const argv = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--workers', '1',
    ...rates, ...m.args, ...args];
  const child = spawn(BIN, argv, {
    env: { ...process.env, ...m.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  let rest = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    rest += d;
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      logs.push(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
  });
  child.stdout.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('no URL in 60 s:\n' + logs.join('\n'))), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl).trim().replace(/\/$/, ''));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n` + logs.join('\n')));
    });
  });
  const port = Number(new URL(url).port);
  return {
    child, url, port, dataDir, logs,
    alive: () => child.exitCode === null && child.signalCode === null,
    rssKiB: () => {
      const m2 = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m2 ? Number(m2[1]) : NaN;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const closed = once(child, 'close'); // after stderr is drained
        child.kill('SIGTERM');
        await closed;
      }
      if (rest) logs.push(rest);
      rest = '';
      rmSync(root, { recursive: true, force: true });
      return { code: child.exitCode, signal: child.signalCode };
    },
  };
}

export function filesUnder(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

// Sends bytes on a new connection and reads one response: the status line,
// headers and (with Content-Length) the body. Resolves on a full response,
// on the server closing, or after timeoutMs (then timedOut is true).
// halfClose ends our side after sending.
export function rawRequest(port, bytes, { timeoutMs = 15000, halfClose = false,
  localAddress } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    const chunks = [];
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : text;
      const headers = {};
      for (const line of head.split('\r\n').slice(1)) {
        const c = line.indexOf(':');
        if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      resolve({
        status: m ? Number(m[1]) : 0, headers, body: split >= 0 ? buf.subarray(split + 4) : null,
        closed: how === 'closed', timedOut: how === 'timeout', error: how.error,
      });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) return;
      let head = text.slice(0, split);
      let start = split + 4;
      // Skip interim 100 Continue answers.
      while (/^HTTP\/1\.1 100/.test(head)) {
        const next = text.indexOf('\r\n\r\n', start);
        if (next < 0) return;
        head = text.slice(start, next);
        start = next + 4;
      }
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (cl && Buffer.byteLength(text, 'latin1') - start >= Number(cl[1])) {
        chunks.splice(0, chunks.length, Buffer.from(head + '\r\n\r\n' + text.slice(start), 'latin1'));
        finish('full');
      }
    });
    sock.on('end', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    sock.on('error', (e) => finish({ error: e.code || String(e) }));
    sock.write(bytes, () => { if (halfClose) sock.end(); });
  });
}

// A multipart body from [{ name, data, filename, type }] (data: string or Buffer).
export function multipart(parts, boundary = 'hOsTiLeBoUnDaRy', { close = true } = {}) {
  const out = [];
  for (const p of parts) {
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    const head = [Buffer.from(h, 'latin1')];
    if (p.filename !== undefined) {
      head.push(Buffer.from('; filename="', 'latin1'),
        Buffer.isBuffer(p.filename) ? p.filename : Buffer.from(p.filename, 'utf8'),
        Buffer.from('"', 'latin1'));
    }
    head.push(Buffer.from('\r\n' + (p.type ? `Content-Type: ${p.type}\r\n` : '') + '\r\n',
      'latin1'));
    out.push(...head, Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data, 'utf8'),
      Buffer.from('\r\n'));
  }
  if (close) out.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(out), type: `multipart/form-data; boundary=${boundary}` };
}

// fetch with a per-request deadline; never throws on HTTP errors. One
// connection per request: the tests shorten the server's idle timeout, and
// a pooled connection the server has just closed would fail the next request.
export async function request(url, { method = 'GET', headers = {}, body, timeoutMs = 60000 } = {}) {
  const resp = await fetch(url, {
    method, headers: { Connection: 'close', ...headers }, body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const buf = Buffer.from(await resp.arrayBuffer());
  let json = null;
  try { json = JSON.parse(buf.toString('utf8')); } catch { /* not JSON */ }
  return { status: resp.status, headers: resp.headers, body: buf, json };
}
