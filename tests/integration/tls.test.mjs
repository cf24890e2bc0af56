// TLS served by the program itself (P9): TLS 1.2 and 1.3 only, HSTS, and the
// same headers. The certificate is made here, for this run only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { startServer, cleanup, tempDir, checkSecurityHeaders } from './helpers.mjs';

function have(tool) {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function makeCert(dir) {
  const key = `${dir}/key.pem`;
  const cert = `${dir}/cert.pem`;
  if (have('certtool')) {
    writeFileSync(`${dir}/tmpl`, 'cn = "localhost"\nip_address = "127.0.0.1"\n' +
      'dns_name = "localhost"\nexpiration_days = 2\ntls_www_server\nsigning_key\n' +
      'encryption_key\n');
    execFileSync('certtool', ['--generate-privkey', '--key-type', 'ecdsa', '--outfile', key],
      { stdio: 'ignore' });
    execFileSync('certtool', ['--generate-self-signed', '--load-privkey', key, '--template',
      `${dir}/tmpl`, '--outfile', cert], { stdio: 'ignore' });
  } else {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
      'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj',
      '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: 'ignore' });
  }
  return { key, cert };
}

function get(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, rejectUnauthorized: true, agent: false }, (res) => {
      const protocol = res.socket.getProtocol();
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        protocol,
        headers: new Headers(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
        body: Buffer.concat(chunks),
      }));
    });
    req.on('error', reject);
  });
}

// One handshake with gnutls-cli limited to one protocol version; true when
// the handshake completed.
function handshake(port, version, ca) {
  const r = spawnSync('gnutls-cli', ['--priority', `NORMAL:-VERS-ALL:+${version}`,
    '--x509cafile', ca, '-p', String(port), '127.0.0.1'], { input: '', timeout: 15000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

test('TLS 1.2+ only, HSTS, headers', async (t) => {
  const root = tempDir();
  const { key, cert } = makeCert(root);
  const ca = readFileSync(cert);
  const srv = await startServer({ dataDir: root + '/data', args: ['--tls-cert', cert,
    '--tls-key', key] });
  try {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    for (const path of ['/', '/healthz', '/v1/models', '/nothing-here']) {
      const r = await get(srv.url + path, ca);
      assert.ok(['TLSv1.2', 'TLSv1.3'].includes(r.protocol), `${path}: ${r.protocol}`);
      checkSecurityHeaders(assert, { headers: r.headers }, path, { tls: true });
    }
    const port = Number(new URL(srv.url).port);
    if (!have('gnutls-cli')) {
      t.diagnostic('gnutls-cli missing: protocol-version handshakes not checked');
      return;
    }
    const ok12 = handshake(port, 'VERS-TLS1.2', cert);
    assert.ok(ok12.ok, 'TLS 1.2 handshake works (the tool itself can connect):\n' + ok12.out);
    const ok13 = handshake(port, 'VERS-TLS1.3', cert);
    assert.ok(ok13.ok, 'TLS 1.3 handshake works:\n' + ok13.out);
    for (const old of ['VERS-TLS1.1', 'VERS-TLS1.0']) {
      const r = handshake(port, old, cert);
      assert.ok(!r.ok, `${old} must be refused`);
      // The server says no (an alert or a closed handshake), not the client tool.
      assert.match(r.out, /alert|handshake|version|closed|terminated/i, r.out);
    }
  } finally {
    await srv.stop();
    cleanup(root);
  }
});
