// Acceptance test of `llama-cli serve` through the official `openai` npm SDK: chat (plain, streamed,
// n, stop, logprobs), tool calls (deterministic tests/fixtures/toolcall model), embeddings, models,
// and a client abort mid-stream (the generation is cancelled and its KV freed). Both servers must
// exit 0 on SIGTERM.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { errorShape, loadOpenAI, metrics, pollMetrics, startServer, stopServer, watchdog, TOOLCALL_MODEL } from './lib.mjs';

watchdog(55);

const OpenAIModule = loadOpenAI();
const OpenAI = OpenAIModule.OpenAI || OpenAIModule.default || OpenAIModule;
const { NotFoundError, APIUserAbortError } = OpenAIModule;

const KEY = 'test-key';
const MODEL = 'kjv-tiny';
const TOOL_MODEL = 'toolcall';
let demo, tools, client, toolClient;

before(async () => {
  [demo, tools] = await Promise.all([
    startServer(['--api-key', KEY, '--model-id', MODEL], { apiKey: KEY }),
    startServer(['--api-key', KEY, '--model-id', TOOL_MODEL], { apiKey: KEY, model: TOOLCALL_MODEL }),
  ]);
  client = new OpenAI({ baseURL: `${demo.base}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20000 });
  toolClient = new OpenAI({ baseURL: `${tools.base}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  // a no-op when the shutdown test ran; otherwise the servers must not outlive the test
  for (const s of [demo, tools]) if (s && !s.exited) await stopServer(s);
});

const PROMPT = [{ role: 'user', content: 'And it came to pass' }];
const SAMPLED = { model: MODEL, messages: PROMPT, temperature: 0.8, seed: 42, max_tokens: 40 };

let plain; // the non-streamed completion of SAMPLED, reused by the stop test

test('chat: non-streamed and streamed with the same seed give the same text; usage chunk', async () => {
  plain = await client.chat.completions.create(SAMPLED);
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.model, MODEL);
  assert.equal(plain.choices.length, 1);
  const msg = plain.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.ok(typeof msg.content === 'string' && msg.content.length > 0, 'non-empty content');
  assert.ok(['stop', 'length'].includes(plain.choices[0].finish_reason));
  const u = plain.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens, JSON.stringify(u));

  const stream = await client.chat.completions.create({ ...SAMPLED, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'first delta carries the role');
  const withChoices = chunks.filter((c) => c.choices.length > 0);
  const last = withChoices[withChoices.length - 1];
  assert.equal(last.choices[0].finish_reason, plain.choices[0].finish_reason, 'last choice chunk has the finish_reason');
  for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream');
  const text = withChoices.map((c) => c.choices[0].delta.content ?? '').join('');
  assert.equal(text, msg.content, 'same seed, same text');
  const usageChunk = chunks[chunks.length - 1];
  assert.deepEqual(usageChunk.choices, [], 'the usage chunk has no choices');
  assert.ok(usageChunk.usage, 'final chunk carries usage');
  assert.equal(usageChunk.usage.prompt_tokens, u.prompt_tokens);
  assert.equal(usageChunk.usage.completion_tokens, u.completion_tokens);
  assert.equal(usageChunk.usage.total_tokens, u.total_tokens);
  for (const c of chunks.slice(0, -1)) assert.ok(c.usage == null, 'only the last chunk has usage');
});

test('chat: n = 2 gives two choices, index 0 and 1', async () => {
  const r = await client.chat.completions.create({ ...SAMPLED, n: 2, max_tokens: 16 });
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  for (const c of r.choices) {
    assert.equal(c.message.role, 'assistant');
    assert.ok(c.message.content.length > 0);
    assert.ok(['stop', 'length'].includes(c.finish_reason));
  }
  assert.ok(r.usage.completion_tokens >= 2 && r.usage.completion_tokens <= 32, JSON.stringify(r.usage));
  // streamed: both indexes appear, each ends with a finish_reason
  const s = await client.chat.completions.create({ ...SAMPLED, n: 2, max_tokens: 16, stream: true });
  const texts = ['', ''], finish = [null, null];
  for await (const ch of s) {
    for (const c of ch.choices) {
      texts[c.index] += c.delta.content ?? '';
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  assert.deepEqual(texts, r.choices.map((c) => c.message.content), 'streamed n=2 equals non-streamed n=2');
  assert.ok(finish.every((f) => f === 'stop' || f === 'length'), JSON.stringify(finish));
});

test('chat: stop string cuts the output before it, finish_reason stop', async () => {
  assert.ok(plain, 'needs the first test');
  const full = plain.choices[0].message.content;
  // a word from the middle of the unstopped output
  const words = [...full.matchAll(/ [A-Za-z]+/g)].filter((m) => m.index > 0);
  assert.ok(words.length >= 2, `too few words in ${JSON.stringify(full)}`);
  const pick = words[Math.floor(words.length / 2)];
  const stop = pick[0];
  const expected = full.slice(0, full.indexOf(stop));
  const r = await client.chat.completions.create({ ...SAMPLED, stop: [stop] });
  assert.equal(r.choices[0].message.content, expected, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await client.chat.completions.create({ ...SAMPLED, stop: stop, stream: true });
  let text = '', fin = null;
  for await (const ch of s) for (const c of ch.choices) { text += c.delta.content ?? ''; fin = c.finish_reason ?? fin; }
  assert.equal(text, expected, 'streamed stop');
  assert.equal(fin, 'stop');
});

test('chat: logprobs with top_logprobs 3', async () => {
  const r = await client.chat.completions.create({ ...SAMPLED, max_tokens: 12, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs;
  assert.ok(lp && Array.isArray(lp.content), JSON.stringify(lp));
  assert.equal(lp.content.length, r.usage.completion_tokens, 'one entry per generated token');
  assert.equal(lp.content.map((e) => e.token).join(''), r.choices[0].message.content, 'tokens spell the content');
  for (const e of lp.content) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0, `logprob ${e.logprob}`);
    assert.ok(Array.isArray(e.bytes));
    assert.deepEqual(Buffer.from(e.bytes).toString('utf8'), e.token);
    assert.equal(e.top_logprobs.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.ok(e.top_logprobs[i].logprob <= 0);
      if (i) assert.ok(e.top_logprobs[i - 1].logprob >= e.top_logprobs[i].logprob, 'top_logprobs sorted');
    }
    assert.ok(e.logprob <= e.top_logprobs[0].logprob + 1e-6, 'the best alternative is at least as likely as the sampled token');
  }
  // streamed: the same entries arrive spread over the chunks
  const s = await client.chat.completions.create({ ...SAMPLED, max_tokens: 12, logprobs: true, top_logprobs: 3, stream: true });
  const entries = [];
  for await (const ch of s) for (const c of ch.choices) if (c.logprobs?.content) entries.push(...c.logprobs.content);
  assert.deepEqual(entries.map((e) => e.token), lp.content.map((e) => e.token));
});

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const ASK = [{ role: 'user', content: 'What is the weather in Paris?' }];
const ANSWER = 'The weather in Paris is sunny.';

function assertWeatherCall(r, what) {
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', `${what}: finish_reason (message ${JSON.stringify(c.message)}, usage ${JSON.stringify(r.usage)})`);
  const calls = c.message.tool_calls;
  assert.ok(Array.isArray(calls) && calls.length === 1, `${what}: one tool call in ${JSON.stringify(c.message)}`);
  assert.equal(calls[0].type, 'function');
  assert.ok(typeof calls[0].id === 'string' && calls[0].id.length > 0, `${what}: call id`);
  assert.equal(calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris' }, `${what}: arguments`);
  assert.ok(c.message.content === null || c.message.content.trim() === '', `${what}: content ${JSON.stringify(c.message.content)}`);
  return calls[0];
}

let toolCall; // the assistant's call, reused by the round trip

test('tools: non-streamed tool call', async () => {
  const r = await toolClient.chat.completions.create({ model: TOOL_MODEL, messages: ASK, tools: [WEATHER_TOOL] });
  toolCall = assertWeatherCall(r, 'non-streamed');
});

test('tools: streamed tool call accumulated by the SDK stream helper', async () => {
  const stream = toolClient.chat.completions.stream({ model: TOOL_MODEL, messages: ASK, tools: [WEATHER_TOOL] });
  let argDeltas = 0;
  stream.on('tool_calls.function.arguments.delta', () => { argDeltas++; });
  const final = await stream.finalChatCompletion();
  assertWeatherCall(final, 'streamed');
  assert.ok(argDeltas >= 1, 'argument deltas arrived');
});

test('tools: round trip with a tool result gives the answer', async () => {
  assert.ok(toolCall, 'needs the non-streamed tool call');
  const messages = [
    ...ASK,
    { role: 'assistant', content: null, tool_calls: [toolCall] },
    { role: 'tool', tool_call_id: toolCall.id, content: 'sunny, 24 C' },
  ];
  const r = await toolClient.chat.completions.create({ model: TOOL_MODEL, messages, tools: [WEATHER_TOOL] });
  assert.equal(r.choices[0].message.content, ANSWER);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(!r.choices[0].message.tool_calls || r.choices[0].message.tool_calls.length === 0);
});

test('tools: tool_choice none gives no tool call', async () => {
  const r = await toolClient.chat.completions.create({ model: TOOL_MODEL, messages: ASK, tools: [WEATHER_TOOL], tool_choice: 'none' });
  assert.ok(!r.choices[0].message.tool_calls || r.choices[0].message.tool_calls.length === 0, JSON.stringify(r.choices[0]));
  assert.notEqual(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.content, ANSWER);
});

test('tools: tool_choice naming get_weather forces the call', async () => {
  const r = await toolClient.chat.completions.create({
    model: TOOL_MODEL, messages: ASK, tools: [WEATHER_TOOL],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    max_tokens: 64,
  });
  assertWeatherCall(r, 'named tool_choice');
});

test('embeddings: string and list input, float and base64', async () => {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const one = await client.embeddings.create({ model: MODEL, input: 'In the beginning', encoding_format: 'float' });
  assert.equal(one.object, 'list');
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0].index, 0);
  assert.ok(one.usage.prompt_tokens > 0, JSON.stringify(one.usage));
  const v = one.data[0].embedding;
  assert.ok(Array.isArray(v) && v.length > 0);
  assert.ok(Math.abs(norm(v) - 1) < 1e-4, `unit norm, got ${norm(v)}`);

  const inputs = ['In the beginning', 'God created the heaven and the earth', 'And the earth was without form'];
  const list = await client.embeddings.create({ model: MODEL, input: inputs, encoding_format: 'float' });
  assert.equal(list.data.length, 3);
  assert.deepEqual(list.data.map((d) => d.index), [0, 1, 2]);
  assert.ok(list.usage.prompt_tokens > one.usage.prompt_tokens);
  for (const d of list.data) assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-4);
  for (let k = 0; k < v.length; k++) assert.ok(Math.abs(v[k] - list.data[0].embedding[k]) < 1e-6, 'same input, same vector');

  const b64 = await client.embeddings.create({ model: MODEL, input: inputs, encoding_format: 'base64' });
  assert.equal(b64.data.length, 3);
  for (let i = 0; i < 3; i++) {
    const s = b64.data[i].embedding;
    assert.equal(typeof s, 'string', 'base64 stays a string when asked for explicitly');
    const buf = Buffer.from(s, 'base64');
    const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const ref = list.data[i].embedding;
    assert.equal(f.length, ref.length);
    for (let k = 0; k < f.length; k++) assert.ok(Math.abs(f[k] - ref[k]) < 1e-6, `base64[${i}][${k}] ${f[k]} vs ${ref[k]}`);
  }
  // the SDK's default (no encoding_format) asks for base64 and decodes it itself
  const dflt = await client.embeddings.create({ model: MODEL, input: inputs });
  for (let i = 0; i < 3; i++)
    for (let k = 0; k < v.length; k++) assert.ok(Math.abs(dflt.data[i].embedding[k] - list.data[i].embedding[k]) < 1e-6);
});

test('models: list, retrieve, retrieve a missing one is NotFoundError', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(MODEL), JSON.stringify(ids));
  const m = await client.models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  assert.equal(m.object, 'model');
  await assert.rejects(client.models.retrieve('nope'), (e) => {
    assert.ok(e instanceof NotFoundError, `got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 404);
    errorShape(assert, { error: e.error }, 'retrieve nope');
    return true;
  });
});

test('abort: a stream aborted after 2 chunks is cancelled and its KV freed within 2 s', async () => {
  const base = await metrics(demo);
  const cancelled0 = base.get('llamac_cancellations_total');
  assert.equal(typeof cancelled0, 'number');
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { model: MODEL, messages: [{ role: 'user', content: 'And the LORD spake unto Moses, saying' }], max_tokens: 900, temperature: 1, seed: 7, stream: true },
    { signal: ac.signal },
  );
  let n = 0;
  let finished = false;
  try {
    // the SDK's stream iterator ends quietly when its signal aborts (it swallows the AbortError)
    for await (const ch of stream) {
      if (ch.choices[0]?.finish_reason) finished = true;
      if (++n === 2) ac.abort();
    }
  } catch (e) {
    assert.ok(e instanceof APIUserAbortError || e?.name === 'AbortError', `unexpected ${e}`);
  }
  // chunks already received when the abort lands may still be handed out: "stopped" means far short of
  // the 900 tokens asked for
  assert.ok(n < 100, `the stream stopped after the abort (${n} chunks)`);
  assert.ok(!finished, 'the generation must still be running when aborted');
  const t0 = Date.now();
  const { m, ok, ms } = await pollMetrics(demo, (mm) =>
    mm.get('llamac_cancellations_total') === cancelled0 + 1 && mm.get('llamac_kv_blocks_used') === 0 &&
    mm.get('llamac_requests_running') === 0, 2000);
  const fig = ['llamac_cancellations_total', 'llamac_kv_blocks_used', 'llamac_requests_running', 'llamac_requests_queued']
    .map((k) => `${k}=${m.get(k)}`).join(' ');
  console.log(`# abort: settled=${ok} after ${Date.now() - t0} ms: ${fig}`);
  assert.ok(ok, `within 2 s (${ms} ms): cancellations ${cancelled0} -> ${m.get('llamac_cancellations_total')} (want +1), ${fig}`);
});

test('shutdown: both servers exit 0 on SIGTERM', async () => {
  const [a, b] = await Promise.all([stopServer(demo), stopServer(tools)]);
  assert.deepEqual(a, { code: 0, signal: null }, `demo server: ${demo.stderr}`);
  assert.deepEqual(b, { code: 0, signal: null }, `toolcall server: ${tools.stderr}`);
});
