// Load test of `llama-cli serve`: 64 concurrent streaming clients for LLAMAC_LOAD_SECONDS (default 60)
// against the demo model, 20% of the requests dropping the connection mid-stream. No 5xx, no crash,
// everything released at the end (KV blocks, running and queued requests), RSS growth under 5%,
// exit 0 on SIGTERM. Prints throughput, TTFT percentiles and RSS.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { metrics, pollMetrics, rssKiB, sleep, startServer, stopServer, watchdog } from './lib.mjs';

watchdog(145);

const SECONDS = Number(process.env.LLAMAC_LOAD_SECONDS || 60);
const CLIENTS = Number(process.env.LLAMAC_LOAD_CLIENTS || 64);
const CONCURRENCY = 16;
const WARMUP_S = Math.min(5, SECONDS / 4);
const DISCONNECT_RATE = 0.2;

let srv;
before(async () => {
  srv = await startServer(['--max-concurrency', String(CONCURRENCY)]);
});
after(async () => {
  if (srv && !srv.exited) await stopServer(srv);
});

const WORDS = ('And it came to pass in those days that the LORD spake unto Moses saying Speak unto the children of ' +
  'Israel and the king of Egypt went up into the land of Canaan with all his house and his servants').split(' ');
const rnd = (n) => Math.floor(Math.random() * n);
function prompt() {
  const n = 3 + rnd(10);
  const w = [];
  for (let i = 0; i < n; i++) w.push(WORDS[rnd(WORDS.length)]);
  return w.join(' ');
}

const stats = {
  started: 0, completed: 0, disconnected: 0, s429: 0, s5xx: 0, otherStatus: 0, netErrors: 0, streamErrors: 0,
  incomplete: 0, tokens: 0, ttft: [], notes: [],
};
function note(s) { if (stats.notes.length < 20) stats.notes.push(s); }

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS * 2 });

/* One streamed chat request; resolves when it ended (completed, dropped on purpose, or failed). */
function oneRequest(dropAfter) {
  return new Promise((resolve) => {
    const body = JSON.stringify({
      messages: [{ role: 'user', content: prompt() }],
      max_tokens: 16 + rnd(49),
      temperature: 0.9,
      stream: true,
    });
    const t0 = performance.now();
    let settled = false;
    const done = (retryMs = 0) => { if (!settled) { settled = true; resolve(retryMs); } };
    stats.started++;
    const req = http.request({
      host: '127.0.0.1', port: srv.port, path: '/v1/chat/completions', method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      if (res.statusCode === 429) {
        stats.s429++;
        const ra = Number(res.headers['retry-after']);
        if (!(ra > 0)) note(`429 without a Retry-After: ${JSON.stringify(res.headers)}`);
        res.resume();
        res.on('end', () => done(100 + rnd(200)));
        res.on('error', () => done(100));
        return;
      }
      if (res.statusCode !== 200) {
        if (res.statusCode >= 500) stats.s5xx++; else stats.otherStatus++;
        let t = '';
        res.on('data', (d) => { t += d; });
        res.on('end', () => { note(`status ${res.statusCode}: ${t.slice(0, 200)}`); done(); });
        res.on('error', () => done());
        return;
      }
      let buf = '', chunks = 0, sawDone = false, finish = null, first = true, dropped = false;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (dropped) return;
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') { sawDone = true; continue; }
          let j;
          try { j = JSON.parse(data); } catch { stats.streamErrors++; note(`bad SSE data ${data.slice(0, 100)}`); continue; }
          if (j.error) { stats.streamErrors++; note(`error event ${data.slice(0, 200)}`); continue; }
          for (const c of j.choices || []) {
            if (c.delta && c.delta.content) {
              if (first) { stats.ttft.push(performance.now() - t0); first = false; }
              stats.tokens++;
              chunks++;
            }
            if (c.finish_reason) finish = c.finish_reason;
          }
          if (dropAfter && chunks >= dropAfter && !dropped) {
            dropped = true;
            stats.disconnected++;
            req.destroy(); // drop the connection mid-stream
            done();
            return;
          }
        }
      });
      res.on('end', () => {
        if (dropped) return;
        if (sawDone && finish) stats.completed++;
        else { stats.incomplete++; note(`stream ended without [DONE]/finish_reason (done=${sawDone} finish=${finish})`); }
        done();
      });
      res.on('error', () => { if (!dropped) { stats.netErrors++; note('response error'); } done(); });
      res.on('close', () => done());
    });
    req.on('error', (e) => {
      if (!settled) { stats.netErrors++; note(`request error ${e.code || e.message}`); }
      done(50);
    });
    req.end(body);
  });
}

async function client(deadline) {
  while (performance.now() < deadline) {
    const drop = Math.random() < DISCONNECT_RATE ? 1 + rnd(8) : 0;
    const retryMs = await oneRequest(drop);
    if (retryMs) await sleep(retryMs);
  }
}

function pct(a, p) {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

test(`load: ${CLIENTS} streaming clients for ${SECONDS} s`, async () => {
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  const clients = Array.from({ length: CLIENTS }, () => client(deadline));
  await sleep(WARMUP_S * 1000);
  const rssBefore = rssKiB(srv.pid);
  const m0 = await metrics(srv);
  let peakRunning = 0, peakQueued = 0;
  const sampler = setInterval(async () => {
    try {
      const m = await metrics(srv);
      peakRunning = Math.max(peakRunning, m.get('llamac_requests_running'));
      peakQueued = Math.max(peakQueued, m.get('llamac_requests_queued'));
    } catch { /* counted elsewhere */ }
  }, 1000);
  await Promise.all(clients);
  clearInterval(sampler);
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  await sleep(1000);
  assert.equal(srv.exited, null, `the server died: ${JSON.stringify(srv.exited)} ${srv.stderr}`);
  const m1 = await metrics(srv);
  const rssAfter = rssKiB(srv.pid);
  const growth = (rssAfter - rssBefore) / rssBefore;
  const settled = (m) => m.get('llamac_kv_blocks_used') === 0 && m.get('llamac_requests_running') === 0 && m.get('llamac_requests_queued') === 0;
  const later = settled(m1) ? null : await pollMetrics(srv, settled, 5000);
  const cancelled = m1.get('llamac_cancellations_total');
  const g = (m, k) => m.get(k);
  console.log([
    `# load: ${CLIENTS} clients, ${elapsed.toFixed(1)} s, --max-concurrency ${CONCURRENCY} (peak running ${peakRunning}, peak queued ${peakQueued})`,
    `# requests: started ${stats.started}, completed ${stats.completed}, disconnected ${stats.disconnected}, 429 ${stats.s429}, 5xx ${stats.s5xx}, other status ${stats.otherStatus}, network errors ${stats.netErrors}, stream errors ${stats.streamErrors}, incomplete ${stats.incomplete}`,
    `# streamed tokens (content chunks): ${stats.tokens}, ${(stats.tokens / elapsed).toFixed(0)} tokens/s; server generated ${g(m1, 'llamac_generated_tokens_total')} tokens`,
    `# TTFT (client, request start -> first content chunk): p50 ${pct(stats.ttft, 50).toFixed(1)} ms, p99 ${pct(stats.ttft, 99).toFixed(1)} ms, max ${pct(stats.ttft, 100).toFixed(1)} ms (${stats.ttft.length} samples)`,
    `# server: cancellations ${cancelled}, kv_blocks_used ${g(m1, 'llamac_kv_blocks_used')}/${g(m1, 'llamac_kv_blocks_total')}, kv_blocks_cached ${g(m1, 'llamac_kv_blocks_cached')}, running ${g(m1, 'llamac_requests_running')}, queued ${g(m1, 'llamac_requests_queued')}, preemptions ${g(m1, 'llamac_preemptions_total')}`,
    `# RSS: ${(rssBefore / 1024).toFixed(1)} MiB after ${WARMUP_S} s warm-up -> ${(rssAfter / 1024).toFixed(1)} MiB at the end (${(growth * 100).toFixed(2)}%)`,
    ...(later ? [`# NOT settled 1 s after the clients stopped; after ${later.ms} ms more: settled=${later.ok}`] : []),
    ...stats.notes.map((n) => `# note: ${n}`),
  ].join('\n'));
  void m0;
  assert.equal(stats.s5xx, 0, 'no 5xx');
  assert.equal(stats.streamErrors, 0, 'no error events in streams');
  assert.equal(stats.netErrors, 0, 'no connection errors');
  assert.equal(stats.incomplete, 0, 'every stream not dropped ends with finish_reason and [DONE]');
  assert.equal(stats.otherStatus, 0, 'no other non-200 statuses');
  assert.ok(stats.completed > 0 && stats.disconnected > 0);
  assert.equal(g(m1, 'llamac_kv_blocks_used'), 0, 'kv_blocks_used 0 at the end');
  assert.equal(g(m1, 'llamac_requests_running'), 0, 'requests_running 0 at the end');
  assert.equal(g(m1, 'llamac_requests_queued'), 0, 'requests_queued 0 at the end');
  assert.ok(cancelled <= stats.disconnected, `cancellations ${cancelled} <= disconnects ${stats.disconnected}`);
  assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(2)}% (${rssBefore} -> ${rssAfter} KiB)`);
});

test('load: the server exits 0 on SIGTERM', async () => {
  assert.equal(srv.exited, null, 'still running');
  const r = await stopServer(srv);
  assert.deepEqual(r, { code: 0, signal: null }, srv.stderr);
});
