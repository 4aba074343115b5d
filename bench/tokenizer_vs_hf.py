#!/usr/bin/env python3
"""Single-thread encode throughput: llamac vs HF `tokenizers`, side by side in one run.

Both encode the same strings (tests/fixtures/tokenizer/corpus.json: English, code, many scripts, emoji,
long documents) with the same tokenizer.json, one string at a time, one thread, special tokens parsed
and the post-processor applied (HF's encode(text) defaults). Prints bytes/s for each and the ratio.

    python3 bench/tokenizer_vs_hf.py --ours build/tokenizer-bench --corpus tests/fixtures/tokenizer/corpus.json \
        --tokenizer DIR [--tokenizer DIR ...] [--seconds 5]

Runs where HF tokenizers is installed (the GPU machine); records versions and the CPU model.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

# one thread for HF: its Rust side parallelises only batch calls, but make sure
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def hf_throughput(tok_json, texts, seconds):
    tok = tokenizers.Tokenizer.from_file(tok_json)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(tok.encode(t).ids) for t in texts)  # warm-up pass, and the token count
    best = None
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best is None:
        t0 = time.perf_counter()
        for t in texts:
            tok.encode(t)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return n_bytes, n_tokens, best


def ours_throughput(binary, tok_dir, corpus, seconds):
    out = subprocess.run([binary, "--tokenizer", tok_dir, "--corpus", corpus, "--seconds", str(seconds), "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["bytes"], r["tokens"], r["best_pass_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", action="append", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--skip-runs", action="store_true",
                    help="leave out strings that are >= 90%% one repeated character (5000 spaces, 6000 digits): "
                         "HF's regex engine is quadratic on some of them, which would flatter the ratio")
    a = ap.parse_args()
    texts = json.load(open(a.corpus, encoding="utf-8"))
    if a.skip_runs:
        def is_run(t):
            return len(t) > 100 and max(t.count(c) for c in set(t)) >= 0.9 * len(t)
        texts = [t for t in texts if not is_run(t)]
        a.corpus = "/tmp/tokenizer_vs_hf_corpus.json"
        json.dump(texts, open(a.corpus, "w", encoding="utf-8"), ensure_ascii=False)
    print(f"cpu: {cpu_model()}; python {platform.python_version()}; tokenizers {tokenizers.__version__}")
    print(f"corpus: {len(texts)} strings, {sum(len(t.encode()) for t in texts)} bytes; best of passes over "
          f"{a.seconds:.0f} s each; one thread")
    print(f"{'tokenizer':<28} {'HF MB/s':>9} {'ours MB/s':>10} {'ratio':>7} {'tokens HF/ours':>16}")
    rows = []
    for d in a.tokenizer:
        hb, ht, hs = hf_throughput(os.path.join(d, "tokenizer.json"), texts, a.seconds)
        ob, ot, os_ = ours_throughput(a.ours, d, a.corpus, a.seconds)
        ratio = (ob / os_) / (hb / hs)
        name = os.path.basename(os.path.normpath(os.path.dirname(d) if d.endswith("models") else d))
        print(f"{name:<28} {hb / hs / 1e6:>9.2f} {ob / os_ / 1e6:>10.2f} {ratio:>6.2f}x {ht:>8}/{ot:<8}")
        rows.append({"tokenizer": d, "hf_mb_s": hb / hs / 1e6, "ours_mb_s": ob / os_ / 1e6, "ratio": ratio,
                     "hf_tokens": ht, "ours_tokens": ot})
    print(json.dumps({"cpu": cpu_model(), "tokenizers": tokenizers.__version__, "rows": rows}))
    return 0 if all(r["hf_tokens"] == r["ours_tokens"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
