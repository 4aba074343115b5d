#!/usr/bin/env python3
"""Check tests/fixtures/toolcall with HF transformers, the independent reference: prints PASS or FAIL.

Usage:  python3 scripts/check_toolcall_model_hf.py [MODEL_DIR] [--device cpu|cuda] [--out FILE.json]

Needs torch, transformers (4.4x or 5.x) and tokenizers; no network. For every conversation of
MODEL_DIR/toolcall_cases.json (made by scripts/make_toolcall_model.py) it
  1. loads the tokenizer with AutoTokenizer and renders the chat template with the case's tools
     (apply_chat_template(messages, tools=..., add_generation_prompt=True, tokenize=False)), checks
     that the render ends with the generation prompt and that its ids end with the `assistant\\n` token;
  2. loads the model with AutoModelForCausalLM (float32; attn_implementation eager and sdpa) and
     generates greedily: the new tokens must be the expected text followed by exactly one
     <|im_end|> (generation_config's eos_token_id), and decode to that text;
  3. generates with do_sample=True, temperature 1, top_k 0, top_p 1 under 5 seeds: the same tokens;
  4. runs one forward pass over prompt + expected generation: every row's argmax from the end of the
     prompt on is the next expected token, and every row's top-1/top-2 logit gap is > 30.
With --out it writes what it saw (renders, ids, generated ids, gaps, versions) as JSON.
Exit status 0 on PASS, 1 on FAIL.
"""

import argparse
import json
import os
import platform
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "toolcall")
MIN_GAP = 30.0
SEEDS = [0, 1, 42, 1234, 987654321]
GEN_PROMPT = "<|im_start|>assistant\n"

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("  FAIL: " + msg)
    return cond


def load_model(model_dir, attn, device):
    kw = {"attn_implementation": attn}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kw)
    except TypeError:  # transformers 4.x before `dtype`
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, **kw)
    return model.to(device).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", nargs="?", default=DEFAULT_DIR)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    with open(os.path.join(args.model_dir, "toolcall_cases.json"), encoding="utf-8") as f:
        spec = json.load(f)
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
    print("versions:", versions)
    report = {"versions": versions, "device": args.device, "cases": {}}

    tok = AutoTokenizer.from_pretrained(args.model_dir)
    print("tokenizer class:", type(tok).__name__)
    eos = spec["eos_token_id"]
    check(tok.convert_tokens_to_ids("<|im_end|>") == eos, "tokenizer id of <|im_end|>")
    check(tok.eos_token == "<|im_end|>" and tok.eos_token_id == eos,
          f"tokenizer eos_token {tok.eos_token!r} / {tok.eos_token_id}, want <|im_end|> / {eos}")
    for piece, want in spec["tokens"].items():
        got = tok.convert_tokens_to_ids(piece)
        check(got == want, f"token id of {piece!r}: {got}, want {want}")
        ids = tok(piece, add_special_tokens=False)["input_ids"]
        check(ids == [want], f"{piece!r} encodes to {ids}, want [{want}]")
    assistant_id = spec["tokens"]["assistant\n"]

    prompts = {}
    for case in spec["cases"]:
        name = case["name"]
        text = tok.apply_chat_template(case["messages"], tools=case["tools"], add_generation_prompt=True,
                                       tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        prompts[name] = ids
        report["cases"][name] = {"render": text, "prompt_ids": ids}
        print(f"case {name}: {len(text)} chars, {len(ids)} prompt tokens")
        check(text.endswith(GEN_PROMPT), f"{name}: render does not end with the generation prompt")
        check(("# Tools" in text) == (case["tools"] is not None), f"{name}: tools in the system prompt")
        check(ids and ids[-1] == assistant_id, f"{name}: prompt ids do not end with `assistant\\n`")
        check(tok.decode(ids, skip_special_tokens=False) == text, f"{name}: decode(encode(render)) != render")

    # the round trip: turn 1 + generation + <|im_end|> is a token prefix of turn 2
    if "call" in prompts and "result" in prompts:
        call_case = next(c for c in spec["cases"] if c["name"] == "call")
        gen = tok(call_case["expected"], add_special_tokens=False)["input_ids"] + [eos]
        turn1 = prompts["call"] + gen
        check(prompts["result"][:len(turn1)] == turn1, "turn 1 + its generation is not a prefix of turn 2")

    for attn in ("eager", "sdpa"):
        model = load_model(args.model_dir, attn, args.device)
        gc_eos = model.generation_config.eos_token_id
        check(gc_eos == eos or gc_eos == [eos], f"generation_config eos_token_id {gc_eos}, want {eos}")
        for case in spec["cases"]:
            name, expected = case["name"], case["expected"]
            ids = prompts[name]
            inp = torch.tensor([ids], device=args.device)
            mask = torch.ones_like(inp)
            want = tok(expected, add_special_tokens=False)["input_ids"] + [eos]
            runs = [("greedy", None)] + [("sample", s) for s in SEEDS]
            for mode, seed in runs:
                kw = {"max_new_tokens": 16, "pad_token_id": spec["tokens"]["<|endoftext|>"]}
                if mode == "greedy":
                    kw.update(do_sample=False)
                else:
                    torch.manual_seed(seed)
                    kw.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
                with torch.no_grad():
                    out = model.generate(inp, attention_mask=mask, **kw)
                new = out[0, len(ids):].tolist()
                label = f"{attn} {name} {mode}" + ("" if seed is None else f" seed {seed}")
                check(new == want, f"{label}: generated ids {new}, want {want}")
                check(tok.decode(new[:-1], skip_special_tokens=False) == expected,
                      f"{label}: text {tok.decode(new, skip_special_tokens=False)!r}, want {expected!r}")
                if mode == "greedy":
                    report["cases"][name].setdefault("generated_ids", {})[attn] = new
                    print(f"  {attn} greedy {name}: {tok.decode(new, skip_special_tokens=False)!r}")
            # logits over prompt + expected generation (the EOS is not fed back)
            full = torch.tensor([ids + want[:-1]], device=args.device)
            with torch.no_grad():
                logits = model(full).logits[0].double().cpu()
            top2 = logits.topk(2, dim=-1)
            gaps = top2.values[:, 0] - top2.values[:, 1]
            argmax = top2.indices[:, 0].tolist()
            for j, w in enumerate(want):
                p = len(ids) - 1 + j
                check(argmax[p] == w, f"{attn} {name}: argmax at position {p} is {argmax[p]}, want {w}")
            min_gap = float(gaps.min())
            at = int(gaps.argmin())
            print(f"  {attn} {name}: smallest top-2 logit gap over {len(gaps)} positions {min_gap:.4f} (at {at}); "
                  f"after the prompt: {[round(float(g), 4) for g in gaps[len(ids) - 1:]]}")
            check(min_gap > MIN_GAP, f"{attn} {name}: logit gap {min_gap:.3f} at position {at}")
            report["cases"][name].setdefault("min_gap", {})[attn] = min_gap
        del model

    report["result"] = "FAIL" if failures else "PASS"
    report["failures"] = failures
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
    print("FAIL (%d)" % len(failures) if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
