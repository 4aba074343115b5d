#!/usr/bin/env python3
"""Train the demo model of llamac (`make demo`): a tiny Llama-3-architecture LlamaForCausalLM with a
Llama-3-style byte-level BPE tokenizer, on the King James Bible.

Usage (on the GPU machine; needs torch, transformers 5.x, tokenizers):
  python3 scripts/prepare_demo_corpus.py .devcarry-demo            # on a Debian machine: kjv.txt
  PYTHONUNBUFFERED=1 python3 scripts/train_demo_model.py --corpus .devcarry-demo/kjv.txt \\
      --out models/kjv-tiny [--budget-s 240] [--only NAME] [--seed 1234]

What it does:
  1. Splits the corpus (chapters separated by blank lines, see prepare_demo_corpus.py) into a training
     set and a held-out validation set (every 50th chapter, ~2%).
  2. Trains a byte-level BPE tokenizer with HF `tokenizers` on the training chapters: Llama-3 regex
     Split (Isolated) + ByteLevel(add_prefix_space=False, use_regex=False), BPE with ignore_merges,
     ByteLevel decoder, 10 special tokens at the end of the vocabulary (Llama-3's first ten, same
     order), post-processor Sequence[ByteLevel, TemplateProcessing adding <|begin_of_text|>];
     4096 tokens in all.
  3. Smoke test: a 2-layer model for 3 steps, saved, reloaded and run through generate(), so that a
     broken pipeline fails in seconds, not after the training.
  4. Trains the candidates of SWEEP in order (each a full warmup + cosine schedule of its own, AdamW,
     bf16 autocast over fp32 master weights, fixed seed), skipping a candidate whose projected time
     does not fit in what is left of --budget-s; keeps the one with the lowest final validation loss.
     Training sequences are <|begin_of_text|> + CONTEXT-1 tokens from a random offset of the token
     stream (books joined by <|end_of_text|>).
  5. Saves that model in bfloat16 with save_pretrained (config.json, generation_config.json with eos
     [<|end_of_text|>, <|eot_id|>], model.safetensors) and the tokenizer with save_pretrained
     (tokenizer.json, tokenizer_config.json with bos/eos and a Llama-3-style chat_template).
  6. Reloads the saved folder on the CPU in float32 and writes hf_greedy.json: the prompt, its ids,
     the greedy continuation of generate(do_sample=False), the top1-top2 logit margins along the
     path, and a full-forward teacher-forced cross-check. Writes train_log.json (every candidate's
     curve and the versions).
"""
import argparse
import json
import math
import os
import platform
import shutil
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402

SCRIPT = "scripts/train_demo_model.py"
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Llama 3's first ten special tokens (ids 128000..128009 there), in the same order, here at the end.
SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
]
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
VOCAB_SIZE = 4096
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
VAL_EVERY_CHAPTER = 50  # chapters i with i % 50 == 25 are held out
CONTEXT = 512
BATCH = 64
MAX_POS = 1024
ROPE_THETA = 10000.0
PROMPT = "In the beginning"
N_NEW = 128

SHAPES = {
    # hidden, layers, heads, kv heads, ffn
    "h256x8": dict(hidden=256, layers=8, heads=8, kv=2, ffn=688),
    "h320x6": dict(hidden=320, layers=6, heads=8, kv=2, ffn=832),
}
# name, shape, epochs (tokens seen / training tokens), dropout, peak lr
SWEEP = [
    ("A10", "h256x8", 10, 0.0, 2e-3),
    ("B10", "h320x6", 10, 0.0, 2e-3),
    ("A25", "h256x8", 25, 0.1, 2e-3),
    ("B25", "h320x6", 25, 0.1, 2e-3),
    ("A50", "h256x8", 50, 0.2, 2e-3),
    ("B50", "h320x6", 50, 0.2, 2e-3),
    ("B100", "h320x6", 100, 0.3, 2e-3),
    ("B200", "h320x6", 200, 0.3, 2e-3),
]


def log(*a):
    print(*a, flush=True)


def versions():
    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
    if torch.cuda.is_available():
        v["cuda"] = torch.version.cuda
        v["gpu"] = torch.cuda.get_device_name(0)
    return v


# ----------------------------------------------------------------------------------------------
# Data and tokenizer
# ----------------------------------------------------------------------------------------------


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chapters = [c.strip("\n") for c in text.split("\n\n") if c.strip()]
    out = []
    for i, c in enumerate(chapters):
        heading = c.split("\n", 1)[0]
        book = heading.rsplit(" ", 1)[0]
        out.append({"i": i, "book": book, "heading": heading, "text": c + "\n\n", "val": i % VAL_EVERY_CHAPTER == 25})
    return out


def train_tokenizer(train_texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIALS),
        min_frequency=2,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train_texts, trainer=trainer)
    n_bpe = tok.get_vocab_size(with_added_tokens=True)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)]
            ),
        ]
    )
    # The trainer may rebuild the BPE model without the ignore_merges flag: set it in the JSON.
    tj = json.loads(tok.to_str())
    tj["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(tj))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    assert n_bpe == VOCAB_SIZE - len(SPECIALS), f"BPE vocabulary has {n_bpe} tokens"
    assert [ids[s] for s in SPECIALS] == list(range(n_bpe, n_bpe + len(SPECIALS))), ids
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB_SIZE
    return tok


def encode_streams(tok, chapters):
    eos_id = tok.token_to_id(EOS)
    train_ids, val_ids = [], []
    encs = tok.encode_batch([c["text"] for c in chapters], add_special_tokens=False)
    prev_book = None
    for c, e in zip(chapters, encs):
        if c["val"]:
            val_ids.extend(e.ids)
            continue
        if prev_book is not None and c["book"] != prev_book:
            train_ids.append(eos_id)
        prev_book = c["book"]
        train_ids.extend(e.ids)
    train_ids.append(eos_id)
    return torch.tensor(train_ids, dtype=torch.long), torch.tensor(val_ids, dtype=torch.long)


# ----------------------------------------------------------------------------------------------
# Model and training
# ----------------------------------------------------------------------------------------------


def make_config(shape, tok, dropout):
    s = SHAPES[shape] if isinstance(shape, str) else shape
    kw = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=s["hidden"],
        intermediate_size=s["ffn"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv"],
        head_dim=s["hidden"] // s["heads"],
        hidden_act="silu",
        max_position_embeddings=MAX_POS,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=dropout,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=None,
    )
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": ROPE_THETA}
    else:
        kw["rope_theta"] = ROPE_THETA
    return LlamaConfig(**kw)


def n_params(model):
    return sum(p.numel() for p in model.parameters())  # parameters() lists the tied matrix once


def add_dropout_hooks(model, p):
    """Residual dropout (after o_proj and down_proj) and embedding dropout, as forward hooks: HF's Llama
    has attention dropout only. Active in train() mode only; hooks are not saved."""
    if p <= 0:
        return []

    def hook(mod, inp, out):
        return F.dropout(out, p=p, training=mod.training)

    return [
        m.register_forward_hook(hook)
        for n, m in model.named_modules()
        if n.endswith("o_proj") or n.endswith("down_proj") or n.endswith("embed_tokens")
    ]


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


def val_batches(val, bos_id, dev):
    n = (val.numel()) // (CONTEXT - 1)
    x = val[: n * (CONTEXT - 1)].view(n, CONTEXT - 1)
    x = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), x], dim=1).to(dev)
    return [x[i : i + BATCH] for i in range(0, n, BATCH)]


@torch.no_grad()
def evaluate(model, vbatches):
    model.eval()
    tot, cnt = 0.0, 0
    for x in vbatches:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        tot += loss.item()
        cnt += x[:, 1:].numel()
    model.train()
    return tot / cnt


def train_one(name, shape, epochs, dropout, peak_lr, tok, train, vbatches, seed, max_steps=None):
    dev = "cuda"
    bos_id = tok.token_to_id(BOS)
    torch.manual_seed(seed)
    cfg = make_config(shape, tok, dropout)
    model = LlamaForCausalLM(cfg).to(dev)
    model.train()
    hooks = add_dropout_hooks(model, dropout)
    tokens_per_step = BATCH * (CONTEXT - 1)
    steps = max(1, round(epochs * train.numel() / tokens_per_step))
    if max_steps is not None:
        steps = min(steps, max_steps)
    warmup = max(1, min(200, steps // 20))
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=peak_lr, betas=(0.9, 0.95), eps=1e-8, fused=True,
    )
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    train_dev = train.to(dev)
    offs = torch.arange(CONTEXT - 1, device=dev)
    bos_col = torch.full((BATCH, 1), bos_id, dtype=torch.long, device=dev)
    log_every = max(1, steps // 10)
    val_every = 2 * log_every
    hist_train, hist_val = [], []
    acc = torch.zeros((), device=dev)
    acc_n = 0
    tail = torch.zeros((), device=dev)
    tail_n = 0
    tail_from = max(0, steps - 50)
    log(f"[{name}] shape={shape} params={n_params(model)} epochs={epochs} steps={steps} dropout={dropout} "
        f"lr={peak_lr} attn={model.config._attn_implementation}")
    torch.cuda.synchronize()
    t0 = time.time()
    for step in range(steps):
        lr = lr_at(step, steps, peak_lr, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, train.numel() - (CONTEXT - 1), (BATCH,), generator=gen).to(dev, non_blocking=True)
        x = torch.cat([bos_col, train_dev[starts[:, None] + offs]], dim=1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        acc += loss.detach()
        acc_n += 1
        if step >= tail_from:
            tail += loss.detach()
            tail_n += 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            tl = (acc / acc_n).item()
            hist_train.append([step + 1, round(tl, 4)])
            acc.zero_()
            acc_n = 0
            msg = f"[{name}] step {step + 1}/{steps} lr {lr:.2e} train {tl:.4f}"
            if (step + 1) % val_every == 0 or step + 1 == steps:
                vl = evaluate(model, vbatches)
                hist_val.append([step + 1, round(vl, 4)])
                msg += f" val {vl:.4f}"
            log(msg + f" ({time.time() - t0:.1f}s)")
    torch.cuda.synchronize()
    wall = time.time() - t0
    for h in hooks:
        h.remove()
    res = {
        "name": name,
        "shape": shape,
        "params": n_params(model),
        "epochs": epochs,
        "steps": steps,
        "warmup_steps": warmup,
        "batch": BATCH,
        "context": CONTEXT,
        "tokens_seen": steps * tokens_per_step,
        "dropout": dropout,
        "peak_lr": peak_lr,
        "wall_s": round(wall, 2),
        "ms_per_step": round(1000 * wall / steps, 3),
        "final_train_loss_last50": round((tail / max(1, tail_n)).item(), 4),
        "final_val_loss": hist_val[-1][1],
        "train_curve": hist_train,
        "val_curve": hist_val,
    }
    return model, res


# ----------------------------------------------------------------------------------------------
# Saving and the HF reference continuation
# ----------------------------------------------------------------------------------------------


def save_tokenizer(tok, out, notes):
    try:
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token=BOS, eos_token=EOS, clean_up_tokenization_spaces=False,
            model_max_length=MAX_POS,
        )
        hf.chat_template = CHAT_TEMPLATE
        import inspect

        kw = {}
        if "save_jinja_files" in inspect.signature(hf.save_pretrained).parameters:
            kw["save_jinja_files"] = False
        hf.save_pretrained(out, **kw)
    except Exception as e:  # written by hand instead, in the layout transformers reads
        import traceback

        traceback.print_exc()
        notes["tokenizer_save_pretrained_error"] = f"{type(e).__name__}: {e}"
        tok.save(os.path.join(out, "tokenizer.json"), pretty=True)
        tc = {
            "added_tokens_decoder": {
                str(tok.token_to_id(s)): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True}
                for s in SPECIALS
            },
            "bos_token": BOS,
            "eos_token": EOS,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": MAX_POS,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tc, f, indent=2, ensure_ascii=False)
            f.write("\n")
    # tokenizer.json must be exactly the trained tokenizer (transformers may rewrite the post-processor).
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        saved = json.load(f)
    ours = json.loads(tok.to_str())
    notes["tokenizer_json_as_saved_by_transformers_equals_trained"] = saved == ours
    if saved != ours:
        notes["tokenizer_json_keys_rewritten"] = sorted(k for k in ours if saved.get(k) != ours.get(k))
        with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok.to_str(pretty=True))
    cfg_path = os.path.join(out, "tokenizer_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        tc = json.load(f)
    jinja = os.path.join(out, "chat_template.jinja")
    notes["chat_template_jinja_written"] = os.path.exists(jinja)
    changed = False
    if tc.get("chat_template") != CHAT_TEMPLATE:
        tc["chat_template"] = CHAT_TEMPLATE
        changed = True
    for k, v in (("bos_token", BOS), ("eos_token", EOS)):
        if tc.get(k) != v and not (isinstance(tc.get(k), dict) and tc[k].get("content") == v):
            tc[k] = v
            changed = True
    if os.path.exists(jinja):
        os.remove(jinja)
    notes["tokenizer_config_patched"] = changed
    if changed:
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(tc, f, indent=2, ensure_ascii=False)
            f.write("\n")
    for extra in ("special_tokens_map.json",):
        if os.path.exists(os.path.join(out, extra)):
            notes.setdefault("extra_tokenizer_files", []).append(extra)


def check_tokenizer_roundtrip(tok, out, chapters, notes):
    try:
        _check_tokenizer_roundtrip(tok, out, chapters, notes)
    except Exception as e:  # recorded; hf_greedy loads the tokenizer again and fails loudly if it must
        import traceback

        traceback.print_exc()
        notes["tokenizer_roundtrip_error"] = f"{type(e).__name__}: {e}"


def _check_tokenizer_roundtrip(tok, out, chapters, notes):
    hf = AutoTokenizer.from_pretrained(out)
    notes["transformers_tokenizer_class"] = type(hf).__name__
    samples = [c["text"] for c in chapters[::97]] + [PROMPT, "Hello, world! 123 4567 don't", "  two  spaces\n\n\nx"]
    bad = 0
    for s in samples:
        a = tok.encode(s, add_special_tokens=True).ids
        b = list(hf(s)["input_ids"])
        if a != b or tok.decode(a, skip_special_tokens=True) != s:
            bad += 1
    notes["tokenizer_roundtrip_samples"] = len(samples)
    notes["tokenizer_roundtrip_mismatches"] = bad
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who made the heaven?"}]
    r = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    notes["chat_template_render_example"] = r


def save_model(model, tok, out):
    model.config.attention_dropout = 0.0
    model = model.to("cpu").to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.token_to_id(BOS), eos_token_id=[tok.token_to_id(EOS), tok.token_to_id(EOT)]
    )
    model.save_pretrained(out)
    return model


def hf_greedy(out, tok, bf16_model, n_new, notes):
    try:
        ref = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32)
    except TypeError:
        ref = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32)
    ref.eval()
    sd = bf16_model.state_dict()
    notes["reload_max_abs_diff_vs_bf16"] = max(
        (ref.state_dict()[k].float() - v.float()).abs().max().item() for k, v in sd.items()
    )
    hf_tok = AutoTokenizer.from_pretrained(out)
    prompt_ids = list(hf_tok(PROMPT)["input_ids"])
    assert prompt_ids == tok.encode(PROMPT).ids
    x = torch.tensor([prompt_ids])
    gen_logits = None
    with torch.no_grad():
        kw = dict(attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n_new,
                  pad_token_id=tok.token_to_id(EOS))
        try:
            g = ref.generate(x, output_logits=True, return_dict_in_generate=True, **kw)
            seq, gen_logits = g.sequences, g.logits
        except Exception as e:  # older/newer generate without output_logits: margins from the full forward
            notes["generate_output_logits_error"] = f"{type(e).__name__}: {e}"
            seq = ref.generate(x, **kw)
            if not torch.is_tensor(seq):
                seq = seq.sequences
    cont = seq[0, len(prompt_ids):].tolist()
    # Teacher-forced cross-check: one forward over prompt + continuation, no cache.
    full = torch.tensor([prompt_ids + cont])
    with torch.no_grad():
        lg = ref(input_ids=full, use_cache=False).logits[0].float()
    p = len(prompt_ids)
    tf_logits = lg[p - 1 : p - 1 + len(cont)]
    tf_arg = tf_logits.argmax(-1).tolist()
    tf_top2 = torch.topk(tf_logits, 2, dim=-1).values
    tf_margin = (tf_top2[:, 0] - tf_top2[:, 1]).min().item()
    rows = [gl[0].float() for gl in gen_logits] if gen_logits is not None else list(tf_logits)
    steps = []
    for row in rows:
        v, ix = torch.topk(row, 2)
        steps.append({"id": int(ix[0]), "top1": round(v[0].item(), 5), "top2_id": int(ix[1]),
                      "margin": round((v[0] - v[1]).item(), 6)})
    notes["generate_logits_agree_with_tokens"] = [s["id"] for s in steps] == cont
    margins = [s["margin"] for s in steps]
    imin = min(range(len(margins)), key=lambda i: margins[i])
    res = {
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "continuation_ids": cont,
        "all_ids": prompt_ids + cont,
        "n_new_tokens": len(cont),
        "continuation_text": hf_tok.decode(cont, skip_special_tokens=False),
        "full_text": hf_tok.decode(prompt_ids + cont, skip_special_tokens=False),
        "stopped_at_eos": len(cont) < n_new,
        "reference": {
            "made_by": SCRIPT,
            "call": f"LlamaForCausalLM.from_pretrained(dir, dtype=torch.float32).generate(prompt_ids, "
                    f"do_sample=False, max_new_tokens={n_new})",
            "weights": "model.safetensors as saved (bfloat16), upcast to float32 on load",
            "compute_dtype": "float32",
            "device": "cpu",
            "attn_implementation": ref.config._attn_implementation,
            "torch_threads": torch.get_num_threads(),
            "versions": versions(),
        },
        "margins_from": "generate(output_logits=True)" if gen_logits is not None else "full forward",
        "generate_logits_agree_with_tokens": notes["generate_logits_agree_with_tokens"],
        "min_top1_top2_margin": margins[imin],
        "min_margin_step": imin,
        "steps": steps,
        "teacher_forced_full_forward": {
            "matches": sum(int(a == b) for a, b in zip(tf_arg, cont)),
            "of": len(cont),
            "min_top1_top2_margin": round(tf_margin, 6),
        },
        "check": "llama-cli eval --model DIR --tokens <all_ids>: the argmax at positions "
                 "len(prompt_ids)-1 .. len(all_ids)-2 must equal continuation_ids",
    }
    return res


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def smoke(tok, train, vbatches, notes):
    """The whole pipeline on a 2-layer model for 3 steps, into a scratch folder."""
    t0 = time.time()
    shape = dict(hidden=64, layers=2, heads=4, kv=2, ffn=160)
    model, _ = train_one("smoke", shape, 1, 0.1, 1e-3, tok, train, vbatches[:1], 1, max_steps=3)
    d = "/tmp/llamac_demo_smoke"
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    m16 = save_model(model, tok, d)
    sn = {}
    save_tokenizer(tok, d, sn)
    check_tokenizer_roundtrip(tok, d, [], sn)
    r = hf_greedy(d, tok, m16, 8, sn)
    notes["smoke_s"] = round(time.time() - t0, 1)
    log(f"smoke ok in {notes['smoke_s']}s: {sorted(os.listdir(d))} -> {r['continuation_text']!r}")
    log("smoke notes: " + json.dumps(sn, ensure_ascii=False))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=240.0, help="wall-clock budget of the sweep")
    ap.add_argument("--only", default=None, help="train just this SWEEP candidate")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-smoke", action="store_true")
    args = ap.parse_args()
    t_start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    notes = {"versions": versions(), "seed": args.seed, "made_by": SCRIPT}
    log(json.dumps(notes["versions"]))

    chapters = read_corpus(args.corpus)
    train_texts = [c["text"] for c in chapters if not c["val"]]
    t0 = time.time()
    tok = train_tokenizer(train_texts)
    notes["tokenizer_train_s"] = round(time.time() - t0, 2)
    train, val = encode_streams(tok, chapters)
    notes["data"] = {
        "corpus": os.path.basename(args.corpus),
        "chapters": len(chapters),
        "val_chapters": [c["heading"] for c in chapters if c["val"]],
        "train_tokens": train.numel(),
        "val_tokens": val.numel(),
        "train_bytes": sum(len(t.encode()) for t in train_texts),
    }
    log(f"tokenizer {notes['tokenizer_train_s']}s; train tokens {train.numel()}, val tokens {val.numel()}, "
        f"val chapters {len(notes['data']['val_chapters'])}")
    vbatches = val_batches(val, tok.token_to_id(BOS), "cuda")

    if not args.no_smoke:
        smoke(tok, train, vbatches, notes)

    sweep = [s for s in SWEEP if args.only is None or s[0] == args.only]
    assert sweep, f"no candidate named {args.only}"
    results, best, best_model = [], None, None
    ms_per_step = {}
    t_sweep = time.time()
    for name, shape, epochs, dropout, lr in sweep:
        steps = max(1, round(epochs * train.numel() / (BATCH * (CONTEXT - 1))))
        left = args.budget_s - (time.time() - t_sweep)
        est = steps * ms_per_step.get(shape, max(ms_per_step.values(), default=0.0)) / 1000 * 1.1 + 3
        if args.only is None and results and est > left:
            log(f"[{name}] skipped: needs ~{est:.0f}s, {left:.0f}s left")
            results.append({"name": name, "skipped": f"needs ~{est:.0f}s, {left:.0f}s left"})
            continue
        model, res = train_one(name, shape, epochs, dropout, lr, tok, train, vbatches, args.seed)
        ms_per_step[shape] = res["ms_per_step"]
        results.append(res)
        if best is None or res["final_val_loss"] < best["final_val_loss"]:
            best, best_model = res, model.to("cpu")
        else:
            del model
        torch.cuda.empty_cache()
    notes["sweep_wall_s"] = round(time.time() - t_sweep, 1)
    notes["candidates"] = results
    notes["chosen"] = best["name"]
    log(f"chosen {best['name']}: val {best['final_val_loss']} train {best['final_train_loss_last50']}")

    out = args.out
    os.makedirs(out, exist_ok=True)
    m16 = save_model(best_model, tok, out)
    save_tokenizer(tok, out, notes)
    check_tokenizer_roundtrip(tok, out, chapters, notes)
    g = hf_greedy(out, tok, m16, N_NEW, notes)
    write_json(os.path.join(out, "hf_greedy.json"), g)
    notes["files"] = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    with open(os.path.join(out, "config.json")) as f:
        notes["config"] = json.load(f)
    notes["params"] = n_params(m16)
    notes["total_wall_s"] = round(time.time() - t_start, 1)
    write_json(os.path.join(out, "train_log.json"), notes)
    log(json.dumps({k: notes[k] for k in ("files", "params", "chosen", "total_wall_s")}, indent=1))
    log(json.dumps({k: v for k, v in g.items() if k not in ("steps",)}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
