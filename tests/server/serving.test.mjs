// Serving behaviour of `llama-cli serve` beyond single requests: the session_id extension reuses a
// conversation's KV (the second turn reports cached prompt tokens and equals a fresh server's answer);
// a saturated server answers 429 with Retry-After instead of queueing without bound; a client that
// leaves before a NON-streamed answer has its request cancelled (metrics) and its KV freed.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { errorShape, metrics, pollMetrics, sleep, startServer, stopServer, watchdog } from './lib.mjs';

watchdog(55);

let srv, tight; // srv: defaults; tight: one request at a time, a queue of one
before(async () => {
  [srv, tight] = await Promise.all([
    startServer([]),
    startServer(['--max-concurrency', '1', '--max-queue', '1']),
  ]);
});
after(async () => {
  for (const s of [srv, tight]) if (s && !s.exited) assert.equal((await stopServer(s)).code, 0, 'exit 0 on SIGTERM');
});

async function chat(server, body) {
  const r = await fetch(`${server.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: JSON.parse(text) };
}

test('session_id: the second turn reuses the first turn\'s KV and answers as a fresh server does', async () => {
  const turn1 = [{ role: 'user', content: 'And the LORD spake unto Moses, saying' }];
  const a = await chat(srv, { messages: turn1, max_tokens: 12, temperature: 0, session_id: 'conv-1' });
  assert.equal(a.status, 200, JSON.stringify(a.json));
  const turn2 = [...turn1, { role: 'assistant', content: a.json.choices[0].message.content },
    { role: 'user', content: 'What did he say?' }];
  const b = await chat(srv, { messages: turn2, max_tokens: 12, temperature: 0, session_id: 'conv-1' });
  assert.equal(b.status, 200, JSON.stringify(b.json));
  const cached = b.json.usage.prompt_tokens_details.cached_tokens;
  console.log(`# session turn 2: ${b.json.usage.prompt_tokens} prompt tokens, ${cached} cached`);
  assert.ok(cached >= a.json.usage.prompt_tokens - 16, `turn 2 reuses turn 1's prompt: ${cached} cached of ${b.json.usage.prompt_tokens}`);
  // the same conversation on a server that never saw it: the same greedy answer
  const c = await chat(tight, { messages: turn2, max_tokens: 12, temperature: 0 });
  assert.equal(c.status, 200);
  assert.equal(b.json.choices[0].message.content, c.json.choices[0].message.content);
  // a second request on a session that is busy is refused with 409, not queued behind it
  const long = chat(srv, { messages: turn2, max_tokens: 300, temperature: 0, session_id: 'conv-2' });
  await sleep(30);
  const busy = await chat(srv, { messages: turn2, max_tokens: 2, session_id: 'conv-2' });
  await long;
  if (busy.status !== 200) { // the first one may already be done on a fast machine
    assert.equal(busy.status, 409, JSON.stringify(busy.json));
    errorShape(assert, busy.json, '409');
    assert.equal(busy.json.error.param, 'session_id');
  }
});

test('a saturated server answers 429 with Retry-After', async () => {
  const body = { messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 200, temperature: 0.8 };
  const rs = await Promise.all(Array.from({ length: 6 }, () => chat(tight, body)));
  const codes = rs.map((r) => r.status).sort();
  console.log(`# 6 requests to --max-concurrency 1 --max-queue 1: ${codes.join(' ')}`);
  assert.ok(codes.includes(200), 'some are served');
  const refused = rs.filter((r) => r.status === 429);
  assert.ok(refused.length >= 1, `at least one 429: ${codes}`);
  for (const r of refused) {
    errorShape(assert, r.json, '429');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After header');
  }
  assert.ok(rs.every((r) => r.status === 200 || r.status === 429), `only 200 and 429: ${codes}`);
});

test('a client leaving before a non-streamed answer: cancelled within a step, KV freed', async () => {
  const before = await metrics(srv);
  const cancelled0 = before.get('llamac_cancellations_total');
  const used0 = before.get('llamac_kv_blocks_used'); // the sessions of the first test keep theirs
  const body = JSON.stringify({ messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 900 });
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  // wait until it is generating, then leave
  const gen = await pollMetrics(srv, (m) => m.get('llamac_requests_running') >= 1, 5000);
  assert.ok(gen.ok, 'the request started');
  sock.destroy();
  const done = await pollMetrics(srv, (m) => m.get('llamac_cancellations_total') === cancelled0 + 1 &&
    m.get('llamac_kv_blocks_used') === used0 && m.get('llamac_requests_running') === 0, 3000);
  console.log(`# non-streamed disconnect: settled=${done.ok} after ${done.ms} ms`);
  assert.ok(done.ok, `cancellation counted and KV freed: ${done.m.text.split('\n').filter((l) => /cancel|kv_blocks_used|running/.test(l)).join(' | ')}`);
  assert.ok(done.m.get('llamac_requests_total', '{endpoint="/v1/chat/completions",code="499"}') >= 1, 'counted as 499');
});

test('headers beyond the server\'s memory limit are refused (431) and the server keeps serving', async () => {
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  let data = '';
  sock.on('data', (d) => { data += d.toString(); });
  const closed = new Promise((r) => sock.on('close', r));
  sock.on('connect', () => sock.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`));
  for (let t = 0; t < 60 && !/^HTTP\/1\.1 \d{3} /.test(data); t++) await Promise.race([closed, sleep(50)]);
  sock.destroy();
  assert.match(data, /^HTTP\/1\.1 431 /, `answer: ${data.slice(0, 80)}`);
  const h = await fetch(`${srv.base}/health`);
  assert.equal(h.status, 200);
});
