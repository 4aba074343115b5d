#!/usr/bin/env python3
"""Reference embeddings from HF transformers for llamac's llm_embed.

Usage:  python3 scripts/make_embedding_fixtures.py [--fixtures DIR] [--out DIR] [NAME ...]

Needs torch, transformers, numpy. Runs on CPU; no network. NAME defaults to every fixture model
directory under tests/fixtures that has a reference.json (the tiny random-weight models written by
scripts/make_fixtures.py).

For every fixture model this script
  1. loads it with AutoModelForCausalLM.from_pretrained(dtype=float64, attn_implementation="eager"),
  2. draws 3 token sequences (lengths 5, 37, 100; ids uniform in [0, vocab) from a fixed seed per
     model, stored in the output),
  3. runs model.model(input_ids).last_hidden_state (the final-RMSNormed hidden states, the input of
     lm_head) with the float64 RMSNorm / attention softmax / RoPE of scripts/make_fixtures.py
     (F64Patch: stock HF runs those three in float32 even in a float64 model), so the reference is
     float64 math on the stored weights,
  4. pools over the tokens: "mean" (arithmetic mean of the rows) and "last" (the last row), then
     L2-normalises, in float64,
  5. records how far stock HF float64 and stock HF float32 land from that reference (max abs diff
     over the pooled unit vectors),
  6. writes OUT/<name>.json: model, n_embd, n_vocab, cases [{tokens, mean, last}], checks,
     versions, script, date.
"""

import argparse
import datetime
import json
import os
import platform
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import F64Patch  # noqa: E402  (float64 leaf functions, same formulas as HF)

LENGTHS = (5, 37, 100)
SEED_BASE = 424242
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(d, dtype):
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    except TypeError:  # transformers 4.x
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=dtype, attn_implementation="eager")
    model.eval()
    assert next(model.parameters()).dtype == dtype
    return model


@torch.no_grad()
def hidden(model, ids):
    out = model.model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.last_hidden_state[0].to(torch.float64)  # [T][D]


def pooled(h):
    mean = h.mean(dim=0)
    last = h[-1]
    return mean / mean.norm(), last / last.norm()


def fixture_names(fixtures):
    names = []
    for n in sorted(os.listdir(fixtures)):
        if os.path.isfile(os.path.join(fixtures, n, "reference.json")) and os.path.isfile(
                os.path.join(fixtures, n, "config.json")):
            names.append(n)
    return names


def build(fixtures, name, out, versions):
    d = os.path.join(fixtures, name)
    m64 = load(d, torch.float64)
    cfg = m64.config
    n_vocab, n_embd = int(cfg.vocab_size), int(cfg.hidden_size)
    assert max(LENGTHS) <= cfg.max_position_embeddings
    rng = np.random.default_rng(SEED_BASE + sum(map(ord, name)))
    cases = [dict(tokens=[int(x) for x in rng.integers(0, n_vocab, size=n)]) for n in LENGTHS]

    with F64Patch(m64):
        for c in cases:
            mean, last = pooled(hidden(m64, c["tokens"]))
            c["mean"] = [float(x) for x in mean]
            c["last"] = [float(x) for x in last]
    # stock HF (float32 leaves inside the float64 model) and a float32 model, against the reference
    m32 = load(d, torch.float32)
    d64 = d32 = 0.0
    for c in cases:
        ref = torch.tensor([c["mean"], c["last"]], dtype=torch.float64)
        for model, which in ((m64, "64"), (m32, "32")):
            got = torch.stack(pooled(hidden(model, c["tokens"])))
            diff = float((got - ref).abs().max())
            if which == "64":
                d64 = max(d64, diff)
            else:
                d32 = max(d32, diff)
    doc = {
        "model": name,
        "architecture": type(m64).__name__,
        "n_embd": n_embd,
        "n_vocab": n_vocab,
        "what": "model.model(input_ids).last_hidden_state (final RMSNorm applied, the input of lm_head), "
                "pooled over all tokens (mean: arithmetic mean of the rows; last: the last row), then "
                "L2-normalised; float64",
        "computed": "AutoModelForCausalLM.from_pretrained(dtype=float64, attn_implementation='eager') on CPU, "
                    "RMSNorm / attention softmax / RoPE cos-sin replaced by float64 versions of the same "
                    "formulas (scripts/make_fixtures.py F64Patch), no KV cache",
        "token_seed": SEED_BASE + sum(map(ord, name)),
        "cases": cases,
        "checks": {
            "hf_stock_float64_max_abs_diff": d64,
            "hf_float32_max_abs_diff": d32,
        },
        "generated_by": "scripts/make_embedding_fixtures.py",
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with open(os.path.join(out, name + ".json"), "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    print("%-18s %-18s D=%d V=%d lengths=%s stock64=%.2e f32=%.2e" % (
        name, doc["architecture"], n_embd, n_vocab, list(LENGTHS), d64, d32), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "embeddings"))
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    print("versions", json.dumps(versions), flush=True)
    for name in a.names or fixture_names(a.fixtures):
        build(a.fixtures, name, a.out, versions)


if __name__ == "__main__":
    main()
