// Shared helpers of the server acceptance tests: start `llama-cli serve --port 0` as a child process,
// wait until it serves, read /metrics, stop it with SIGTERM and report its exit code.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.LLAMAC_SOURCE_DIR || path.resolve(here, '..', '..');
export const CLI = process.env.LLAMAC_CLI || path.join(SOURCE_DIR, 'build', 'llama-cli');
export const NPM_DIR = process.env.LLAMAC_NPM_DIR || path.join(SOURCE_DIR, 'build', 'npm', 'node_modules');
export const DEMO_MODEL = path.join(SOURCE_DIR, 'models', 'kjv-tiny');
export const TOOLCALL_MODEL = path.join(SOURCE_DIR, 'tests', 'fixtures', 'toolcall');

/* The official SDK, from the test npm directory (installed by `make npm-deps`). */
export function loadOpenAI() {
  const require = createRequire(path.join(NPM_DIR, 'noop.js'));
  try {
    return require('openai');
  } catch (e) {
    throw new Error(`cannot load the openai package from ${NPM_DIR} (run make npm-deps): ${e.message}`);
  }
}

const live = new Set();
function killAll() {
  for (const s of live) {
    try { s.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { killAll(); process.exit(1); });

/* A test that hangs must not outlive CTest's TIMEOUT and leave servers behind (CTest kills only the
 * node process): after seconds, kill the servers and fail. */
export function watchdog(seconds) {
  setTimeout(() => {
    console.error(`# watchdog: still running after ${seconds} s; killing the servers`);
    killAll();
    process.exit(1);
  }, seconds * 1000).unref();
}

/* Starts a server; resolves once it printed its address and /health says ok. */
export async function startServer(args = [], { model = DEMO_MODEL, apiKey = null, readyTimeoutMs = 20000 } = {}) {
  const argv = ['serve', '--model', model, '--port', '0', ...args];
  const proc = spawn(CLI, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { proc, pid: proc.pid, port: 0, base: '', stderr: '', exited: null };
  live.add(srv);
  srv.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      srv.exited = { code, signal };
      live.delete(srv);
      resolve(srv.exited);
    });
  });
  proc.stderr.on('data', (d) => { srv.stderr += d.toString(); });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no 'listening on' line from ${CLI} ${argv.join(' ')}; stderr: ${srv.stderr}`)), readyTimeoutMs);
    proc.stdout.on('data', (d) => {
      out += d.toString();
      const m = /listening on http:\/\/([^:\s]+):(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[2])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}) before listening; stderr: ${srv.stderr}`)); });
  });
  srv.port = port;
  srv.base = `http://127.0.0.1:${port}`;
  srv.auth = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await fetch(`${srv.base}/health`, { headers: srv.auth });
      if (r.status === 200) break;
      await r.arrayBuffer();
    } catch { /* not yet */ }
    if (Date.now() - t0 > readyTimeoutMs) throw new Error(`server not healthy after ${readyTimeoutMs} ms; stderr: ${srv.stderr}`);
    await sleep(50);
  }
  return srv;
}

/* SIGTERM, then the exit status ({code, signal}); SIGKILL after timeoutMs. */
export async function stopServer(srv, timeoutMs = 15000) {
  if (srv.exited) return srv.exited;
  srv.proc.kill('SIGTERM');
  const t = setTimeout(() => { try { srv.proc.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
  const r = await srv.exitPromise;
  clearTimeout(t);
  return r;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* /metrics as {text, samples: Map("name{labels}" -> number), get(name, labels?)} */
export async function metrics(srv) {
  const r = await fetch(`${srv.base}/metrics`, { headers: srv.auth });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${text}`);
  return parseMetrics(text);
}

export function parseMetrics(text) {
  const samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    samples.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  return {
    text,
    samples,
    get(name, labels = '') { return samples.get(name + labels); },
  };
}

export function rssKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
  return m ? Number(m[1]) : NaN;
}

/* Polls until pred(metrics) holds or timeoutMs passes; returns the last metrics and whether it held. */
export async function pollMetrics(srv, pred, timeoutMs) {
  const t0 = Date.now();
  let m;
  for (;;) {
    m = await metrics(srv);
    if (pred(m)) return { m, ok: true, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) return { m, ok: false, ms: Date.now() - t0 };
    await sleep(50);
  }
}

/* Asserts the OpenAI error shape and returns the error object. */
export function errorShape(assert, body, what = '') {
  assert.ok(body && typeof body === 'object' && body.error && typeof body.error === 'object', `${what}: error body ${JSON.stringify(body)}`);
  const e = body.error;
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in e, `${what}: error.${k} missing in ${JSON.stringify(body)}`);
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.type, 'string');
  assert.ok(e.param === null || typeof e.param === 'string');
  assert.ok(e.code === null || typeof e.code === 'string');
  return e;
}
