// Acceptance test of `llama-cli serve` at the HTTP level (fetch and raw sockets): validation errors
// with the OpenAI error shape, body and time limits, routing, methods, API keys, /health and the
// Prometheus text of /metrics (which must count the requests made here). Servers exit 0 on SIGTERM.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { errorShape, parseMetrics, sleep, startServer, stopServer, watchdog } from './lib.mjs';

watchdog(55);

const KEY = 'raw-key';
let srv, open; // srv: key, 64k body limit, 2 s request timeout; open: key + --open-health-metrics
const counted = new Map(); // `${endpoint} ${code}` -> requests made to srv

before(async () => {
  [srv, open] = await Promise.all([
    startServer(['--api-key', KEY, '--max-body', '64k', '--request-timeout', '2'], { apiKey: KEY }),
    startServer(['--api-key', KEY, '--open-health-metrics', '--shutdown-timeout', '1'], { apiKey: KEY }),
  ]);
});

after(async () => {
  for (const s of [srv, open]) if (s && !s.exited) await stopServer(s);
});

const ENDPOINTS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/tokenize',
  '/detokenize', '/apply-template', '/health', '/metrics']);
function endpointLabel(path) {
  if (ENDPOINTS.has(path)) return path;
  if (path.startsWith('/v1/models/')) return '/v1/models';
  return 'other';
}
function count(server, path, status) {
  if (server !== srv) return;
  const k = `${endpointLabel(path)} ${status}`;
  counted.set(k, (counted.get(k) || 0) + 1);
}

/* fetch against srv (or another server); returns {status, headers, text, json}; checks the error shape. */
async function call(path, { method = 'POST', body, key = KEY, server = srv, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined && !h['Content-Type']) h['Content-Type'] = 'application/json';
  const r = await fetch(`${server.base}${path}`, { method, headers: h, body: typeof body === 'object' && !(body instanceof Buffer) ? JSON.stringify(body) : body });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  count(server, path, r.status);
  if (r.status >= 400) errorShape(assert, json, `${method} ${path} -> ${r.status} ${text}`);
  return { status: r.status, headers: r.headers, text, json };
}

/* Writes raw bytes, reads until the server closes or a whole response arrived. Write errors (the
 * server closing early) are ignored: what it answered is what counts. */
function rawExchange(port, chunks, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const t0 = Date.now();
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parseResponse(data), why, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const p = parseResponse(data);
      if (p.complete) finish('complete');
    });
    sock.on('close', () => finish('closed'));
    sock.on('connect', () => { for (const c of chunks) sock.write(c); });
  });
}

function parseResponse(buf) {
  const s = buf.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, complete: false, raw: s };
  const lines = s.slice(0, end).split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = buf.subarray(Buffer.byteLength(s.slice(0, end + 4), 'latin1'));
  const len = Number(headers['content-length']);
  const complete = Number.isFinite(len) && body.length >= len;
  let json = null;
  try { json = JSON.parse(body.toString('utf8')); } catch { /* partial */ }
  return { status, headers, body: body.toString('utf8'), json, complete };
}

const MSG = [{ role: 'user', content: 'And it came to pass' }];
const CHAT = '/v1/chat/completions';

test('malformed JSON: 400 invalid_request_error with the position', async () => {
  const r = await call(CHAT, { body: '{"a": 1,, "b": 2}' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.match(r.json.error.message, /line 1, column 9 \(byte 8\)/, r.json.error.message);
  const r2 = await call(CHAT, { body: '{"messages": [' });
  assert.equal(r2.status, 400);
  assert.match(r2.json.error.message, /byte 14|column 15/, r2.json.error.message);
  const r3 = await call(CHAT, { body: '' });
  assert.equal(r3.status, 400, 'empty body');
  const r4 = await call(CHAT, { body: '[1, 2]' });
  assert.equal(r4.status, 400, 'not an object');
});

test('wrong types name the param', async () => {
  const cases = [
    [{ messages: MSG, temperature: 'hot' }, 'temperature'],
    [{ messages: 'x' }, 'messages'],
    [{ messages: [{ role: 'wizard', content: 'hi' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 'hi' }, { role: 'user', content: 42 }] }, 'messages[1].content'],
    [{ messages: MSG, max_tokens: 'ten' }, 'max_tokens'],
    [{ messages: MSG, max_tokens: 1.5 }, 'max_tokens'],
    [{ messages: MSG, n: 0 }, 'n'],
    [{ messages: MSG, stream: 'yes' }, 'stream'],
    [{ messages: MSG, stop: 7 }, 'stop'],
    [{ messages: MSG, top_p: 3 }, 'top_p'],
    [{ messages: MSG, tools: 'x' }, 'tools'],
  ];
  for (const [body, param] of cases) {
    const r = await call(CHAT, { body });
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, param, `${JSON.stringify(body)} -> ${r.text}`);
  }
});

test('missing fields: no messages -> 400 param messages', async () => {
  const r = await call(CHAT, { body: { temperature: 0.5 } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'messages');
  const e = await call('/v1/embeddings', { body: {} });
  assert.equal(e.status, 400);
  assert.equal(e.json.error.param, 'input');
  const c = await call('/v1/completions', { body: { max_tokens: 3 } });
  assert.equal(c.status, 400);
  assert.equal(c.json.error.param, 'prompt');
});

test('unknown fields are ignored', async () => {
  const r = await call(CHAT, { body: { messages: MSG, max_tokens: 4, frobnicate: { deep: [1, 2] }, another_unknown: 'x' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'chat.completion');
  assert.ok(r.json.choices[0].message.content.length > 0);
});

test('a body larger than --max-body is 413 (Content-Length and chunked)', async () => {
  const big = JSON.stringify({ messages: [{ role: 'user', content: 'a'.repeat(200 * 1024) }], max_tokens: 1 });
  const head = `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\n`;
  const chunked = [`${head}Transfer-Encoding: chunked\r\n\r\n`];
  for (let off = 0; off < big.length; off += 16384) {
    const piece = big.slice(off, off + 16384);
    chunked.push(`${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`);
  }
  chunked.push('0\r\n\r\n');
  const bad = [];
  let r, c;
  for (let i = 0; i < 3; i++) {
    r = await rawExchange(srv.port, [`${head}Content-Length: ${Buffer.byteLength(big)}\r\n\r\n`, big]);
    count(srv, CHAT, 413); // the server counts the 413 it queues
    if (r.status !== 413) bad.push(`Content-Length ${Buffer.byteLength(big)} (try ${i}): got ${r.status || 'no response'} (connection ${r.why})`);
    c = await rawExchange(srv.port, chunked);
    count(srv, CHAT, 413);
    if (c.status !== 413) bad.push(`chunked (try ${i}): got ${c.status || 'no response'} (connection ${c.why})`);
  }
  // just under the limit is fine (an unknown field pads the body to 60 KiB)
  const fits = JSON.stringify({ messages: MSG, max_tokens: 1, pad: 'x'.repeat(60 * 1024) });
  const ok = await call(CHAT, { body: fits });
  assert.equal(ok.status, 200, `a ${fits.length}-byte body: ${ok.text}`);
  assert.deepEqual(bad, [], `SERVER BUG: want 413 with an error body:\n${bad.join('\n')}`);
  errorShape(assert, r.json, '413');
  errorShape(assert, c.json, '413 chunked');
});

test('a stalled partial request is closed after --request-timeout while others are served', async () => {
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  const t0 = Date.now();
  sock.write(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nAuthori`); // half the headers, then nothing
  let received = '';
  sock.on('data', (d) => { received += d.toString(); });
  const closed = new Promise((r) => sock.on('close', () => r(Date.now() - t0)));
  // meanwhile: other clients, one after another
  const lat = [];
  let stop = false;
  const others = (async () => {
    while (!stop && Date.now() - t0 < 6000) {
      const t = Date.now();
      const r = await call(CHAT, { body: { messages: MSG, max_tokens: 8 } });
      assert.equal(r.status, 200, r.text);
      lat.push(Date.now() - t);
      await sleep(50);
    }
  })();
  const closedMs = await Promise.race([closed, sleep(8000).then(() => -1)]);
  stop = true;
  await others;
  sock.destroy();
  const p50 = [...lat].sort((a, b) => a - b)[Math.floor(lat.length / 2)];
  console.log(`# slow request closed after ${closedMs} ms; meanwhile ${lat.length} requests got 200 (p50 ${p50} ms, max ${Math.max(...lat)} ms); the stalled client received ${JSON.stringify(received.slice(0, 60))}`);
  assert.ok(closedMs > 0, 'the server must close the stalled connection');
  assert.ok(closedMs >= 1500 && closedMs <= 4500, `closed after ${closedMs} ms, want about 2000`);
  assert.ok(lat.length >= 5, `only ${lat.length} other requests were served`);
  assert.ok(Math.max(...lat) < 1500, `other clients waited up to ${Math.max(...lat)} ms`);
});

test('a body trickled in slower than --request-timeout is cut off (connection closed, others served)', async () => {
  const body = JSON.stringify({ messages: MSG, max_tokens: 2 });
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  let data = Buffer.alloc(0);
  sock.on('data', (d) => { data = Buffer.concat([data, d]); });
  const t0 = Date.now();
  const closed = new Promise((r) => sock.on('close', () => r(Date.now() - t0)));
  sock.write(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  for (let i = 0; i < body.length && Date.now() - t0 < 6000 && !sock.destroyed && data.length === 0; i++) {
    sock.write(body[i]);
    await sleep(400);
  }
  const closedMs = await Promise.race([closed, sleep(2000).then(() => -1)]);
  sock.destroy();
  const r = parseResponse(data);
  console.log(`# trickled body (a byte every 400 ms): connection closed after ${closedMs} ms, status ${r.status || 'none'}`);
  assert.ok(closedMs > 0 && closedMs < 4500, `closed after ${closedMs} ms, want about 2000`);
  // A response queued while the body is still arriving is not delivered reliably by libmicrohttpd,
  // so the server closes such a connection without an answer (as it does for idle ones).
  assert.equal(data.length, 0, `nothing is answered to a request that never arrived: ${data.toString().slice(0, 300)}`);
});

test('invalid UTF-8 inside a JSON string is 400', async () => {
  const body = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"ab'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}],"max_tokens":2}')]);
  const r = await call(CHAT, { body });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'invalid_request_error');
  // an overlong encoding and a lone surrogate escape's raw form (ED A0 80) are invalid too
  for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const b = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from(bad), Buffer.from('"}]}')]);
    const x = await call(CHAT, { body: b });
    assert.equal(x.status, 400, `bytes ${bad.map((v) => v.toString(16))}: ${x.status} ${x.text}`);
  }
});

test('routing: wrong method 405, unknown route 404, unknown model 404', async () => {
  const m = await call(CHAT, { method: 'GET' });
  assert.equal(m.status, 405, m.text);
  const m2 = await call('/v1/models', { method: 'POST', body: {} });
  assert.equal(m2.status, 405, m2.text);
  const u = await call('/v1/nothing-here', { method: 'GET' });
  assert.equal(u.status, 404, u.text);
  const n = await call('/v1/models/nope', { method: 'GET' });
  assert.equal(n.status, 404, n.text);
  const wrongModel = await call(CHAT, { body: { model: 'nope', messages: MSG } });
  assert.equal(wrongModel.status, 404, wrongModel.text);
  assert.equal(wrongModel.json.error.param, 'model');
});

test('API key: missing 401, wrong 401, right 200; /health and /metrics need it too', async () => {
  assert.equal((await call('/v1/models', { method: 'GET', key: null })).status, 401);
  assert.equal((await call('/v1/models', { method: 'GET', key: 'wrong-key' })).status, 401);
  assert.equal((await call('/v1/models', { method: 'GET', key: KEY.slice(0, -1) })).status, 401, 'a prefix of the key');
  assert.equal((await call('/v1/models', { method: 'GET', key: KEY + 'x' })).status, 401, 'the key plus a byte');
  assert.equal((await call('/v1/models', { method: 'GET', key: null, headers: { Authorization: KEY } })).status, 401, 'no Bearer');
  const ok = await call('/v1/models', { method: 'GET' });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.object, 'list');
  assert.equal((await call(CHAT, { body: { messages: MSG }, key: null })).status, 401);
  assert.equal((await call('/health', { method: 'GET', key: null })).status, 401);
  assert.equal((await call('/metrics', { method: 'GET', key: null })).status, 401);
});

test('--open-health-metrics: /health and /metrics without a key, /v1/models still needs one', async () => {
  const h = await call('/health', { method: 'GET', key: null, server: open });
  assert.equal(h.status, 200);
  assert.deepEqual(h.json, { status: 'ok' });
  const m = await call('/metrics', { method: 'GET', key: null, server: open });
  assert.equal(m.status, 200);
  assert.equal((await call('/v1/models', { method: 'GET', key: null, server: open })).status, 401);
  assert.equal((await call('/v1/models', { method: 'GET', server: open })).status, 200);
});

test('/health is 200 {"status":"ok"}', async () => {
  const h = await call('/health', { method: 'GET' });
  assert.equal(h.status, 200);
  assert.deepEqual(h.json, { status: 'ok' });
  assert.match(h.headers.get('content-type'), /application\/json/);
});

test('/metrics is valid Prometheus text and counts the requests made', async () => {
  await sleep(200); // the stalled and trickled sockets are gone
  const r = await fetch(`${srv.base}/metrics`, { headers: srv.auth });
  const text = await r.text();
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/plain/);
  const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf)$/;
  const typed = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      assert.match(line, /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/, `comment line ${JSON.stringify(line)}`);
      const t = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (t) {
        assert.ok(!typed.has(t[1]), `TYPE of ${t[1]} twice`);
        typed.set(t[1], t[2]);
      }
      continue;
    }
    assert.match(line, sample, `sample line ${JSON.stringify(line)}`);
    const name = line.split(/[{ ]/)[0];
    const family = [...typed.keys()].find((f) => name === f || (typed.get(f) === 'histogram' && /^(.*)_(bucket|sum|count)$/.exec(name)?.[1] === f));
    assert.ok(family, `${name} has no # TYPE before it`);
  }
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const m = parseMetrics(text);
  for (const g of ['llamac_requests_running', 'llamac_requests_queued', 'llamac_kv_blocks_used', 'llamac_cancellations_total'])
    assert.equal(typeof m.get(g), 'number', `${g} present`);
  const mismatches = [];
  for (const [k, n] of counted) {
    const [ep, code] = k.split(' ');
    const got = m.get('llamac_requests_total', `{endpoint="${ep}",code="${code}"}`);
    if (ep === '/health' || ep === '/metrics') {
      if (!(got >= n)) mismatches.push(`${k}: want >= ${n}, got ${got}`);
    } else if (got !== n) {
      mismatches.push(`${k}: want ${n}, got ${got}`);
    }
  }
  for (const need of ['/v1/chat/completions 200', '/v1/chat/completions 400', '/v1/chat/completions 405', '/v1/chat/completions 413', '/v1/models 401', 'other 404'])
    assert.ok(counted.has(need), `the test made ${need}`);
  assert.deepEqual(mismatches, [], `llamac_requests_total vs the requests made:\n${mismatches.join('\n')}\n${text.split('\n').filter((l) => l.startsWith('llamac_requests_total')).join('\n')}`);
});

/* A streamed request against server; resolves with what arrived and how the response ended. */
function streamUntilEnd(server, maxTokens) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ messages: MSG, max_tokens: maxTokens, stream: true, seed: 3 });
    let got = '', how = null;
    const req = http.request({ host: '127.0.0.1', port: server.port, path: CHAT, method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => { got += d; });
      res.on('end', () => { how = how || 'end'; });
      res.on('aborted', () => { how = how || 'aborted'; });
      res.on('error', () => { how = how || 'aborted'; });
      res.on('close', () => resolve({ status: res.statusCode, got, how: how || 'closed' }));
    });
    req.on('error', (e) => resolve({ status: 0, got, how: `error ${e.code}` }));
    req.end(body);
  });
}

test('shutdown: SIGTERM with streams in flight; both servers exit 0', async () => {
  // `open` has --shutdown-timeout 1: these streams (1000 tokens each) are still going at the deadline
  const streams = Array.from({ length: 4 }, () => streamUntilEnd(open, 1000));
  await sleep(300);
  const t0 = Date.now();
  const [a, b] = await Promise.all([stopServer(srv), stopServer(open)]);
  const ms = Date.now() - t0;
  const ends = await Promise.all(streams);
  assert.deepEqual(a, { code: 0, signal: null }, srv.stderr);
  assert.deepEqual(b, { code: 0, signal: null }, open.stderr);
  assert.ok(ms < 5000, `shutdown took ${ms} ms with --shutdown-timeout 1`);
  // every stream must end as a well-formed event stream: [DONE] after a finish_reason, or an error event
  const bad = [];
  for (const [i, e] of ends.entries()) {
    const tail = e.got.slice(-160);
    const clean = e.how === 'end' && (/data: \[DONE\]\n\n$/.test(e.got) || /data: \{"error":/.test(e.got));
    if (!clean) bad.push(`stream ${i}: status ${e.status}, ${e.got.length} bytes, response ${e.how}, tail ${JSON.stringify(tail)}`);
  }
  console.log(`# shutdown with 4 streams in flight: ${ms} ms; ${ends.length - bad.length} of 4 streams ended cleanly`);
  assert.deepEqual(bad, [], `SERVER BUG: streams cancelled at the shutdown deadline must end with an error event (or [DONE]), not be cut:\n${bad.join('\n')}`);
});
