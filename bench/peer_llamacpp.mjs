// The llama.cpp side of bench/peer_llamacpp.sh, and the table it prints.
//
//   node bench/peer_llamacpp.mjs time --npm-dir DIR --model FILE.gguf [--prompt 128] [--gen 64]
//        [--repeat 1] [--threads 2] [--flash-attn auto|on|off] [--seed N]
//     Loads FILE with llama.cpp (node-llama-cpp's prebuilt CPU library under DIR/node_modules) and
//     measures it the way `llama-cli bench` measures us: one untimed 1-token warm-up pass, then per
//     run a fresh sequence, --prompt random token ids prefilled in one batch (timed up to the first
//     sampled token), then --gen single-token decode passes, greedy, EOS ignored. Prints one JSON
//     line. If llama.cpp cannot load the file, prints what llama.cpp logged and exits 3.
//
//   node bench/peer_llamacpp.mjs table FILE.jsonl [--max-others 10]
//     Reads the lines the shell script collected ({"side":"ours"|"theirs", ...}) and prints the
//     medians and the ours/theirs ratios, over the processes that other processes disturbed by at
//     most --max-others % of the CPUs.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

function die(msg, code = 2) {
    process.stderr.write(`peer_llamacpp.mjs: ${msg}\n`);
    process.exit(code);
}

function parseArgs(argv, spec) {
    const o = {...spec};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith("--")) {
            (o._ ??= []).push(a);
            continue;
        }
        const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        if (!(key in spec)) die(`unknown option ${a}`);
        if (i + 1 >= argv.length) die(`${a} needs a value`);
        o[key] = typeof spec[key] === "number" ? Number(argv[++i]) : argv[++i];
        if (typeof spec[key] === "number" && !Number.isFinite(o[key])) die(`${a} needs a number`);
    }
    return o;
}

function median(v) {
    const s = [...v].sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    return s.length % 2 ? s[(s.length - 1) / 2] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
}

/* ---- time: the llama.cpp side ------------------------------------------------------------------- */

async function importNodeLlamaCpp(npmDir) {
    const pkgDir = path.join(npmDir, "node_modules", "node-llama-cpp");
    const pkgFile = path.join(pkgDir, "package.json");
    if (!fs.existsSync(pkgFile)) die(`node-llama-cpp is not installed under ${npmDir} (the shell script installs it)`);
    const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
    const exp = pkg.exports?.["."];
    const entry = (typeof exp === "string" ? exp : exp?.import ?? exp?.default) ?? pkg.main ?? "dist/index.js";
    const mod = await import(pathToFileURL(path.join(pkgDir, entry)).href);
    return {mod, version: pkg.version};
}

async function time(argv) {
    const o = parseArgs(argv, {
        npmDir: "", model: "", prompt: 128, gen: 64, repeat: 1, threads: 2, flashAttn: "auto", seed: 1
    });
    if (!o.npmDir || !o.model) die("time needs --npm-dir and --model");
    if (!["auto", "on", "off"].includes(o.flashAttn)) die("--flash-attn must be auto, on or off");
    const {mod, version} = await importNodeLlamaCpp(o.npmDir);
    const {getLlama, LlamaLogLevel} = mod;

    // Everything llama.cpp logs is kept: on a load failure it is the only place that says why.
    const logs = [];
    const llama = await getLlama({
        gpu: false, // the CPU library only
        build: "never", // never compile llama.cpp: the prebuilt binary of @node-llama-cpp/linux-x64 or nothing
        usePrebuiltBinaries: true,
        skipDownload: true,
        progressLogs: false,
        maxThreads: o.threads,
        logLevel: LlamaLogLevel.debug,
        logger: (level, message) => logs.push({level: String(level), message: String(message).trimEnd()})
    });

    let model;
    try {
        model = await llama.loadModel({modelPath: path.resolve(o.model), gpuLayers: 0, useMmap: true});
    } catch (e) {
        await new Promise((r) => setTimeout(r, 200)); // llama.cpp's log lines reach JS asynchronously
        // llama.cpp's own words: its warnings and errors, and the loader lines just before the failure
        const important = logs.filter((l) => /^(warn|error|fatal)$/i.test(l.level) || /error|fail|invalid|unknown|missing|wrong|expected/i.test(l.message));
        const tail = logs.filter((l) => l.message !== "." && l.level !== "debug").slice(-15);
        const seen = new Set();
        const lines = [];
        for (const l of [...important, ...tail]) {
            const s = `[${l.level}] ${l.message}`;
            if (!seen.has(s)) {
                seen.add(s);
                lines.push(s);
            }
        }
        process.stdout.write(JSON.stringify({side: "theirs", model: o.model, load_error: String(e?.message ?? e), llama_cpp_log: lines}) + "\n");
        process.stderr.write(`llama.cpp could not load ${o.model}: ${e?.message ?? e}\nllama.cpp said:\n  ${lines.join("\n  ")}\n`);
        process.exit(3);
    }

    const meta = model.fileInfo?.metadata ?? {};
    const nVocab = meta[meta.general?.architecture]?.vocab_size ?? meta.tokenizer?.ggml?.tokens?.length;
    if (!Number.isInteger(nVocab) || nVocab <= 0) die("cannot tell the model's vocabulary size");
    const ctx = await model.createContext({
        contextSize: o.prompt + o.gen,
        batchSize: o.prompt, // the whole prompt in one batch (llama.cpp sets n_ubatch = n_batch here)
        sequences: 1,
        threads: {ideal: o.threads, min: o.threads},
        flashAttention: o.flashAttn === "auto" ? "auto" : o.flashAttn === "on",
        failedCreationRemedy: false
    });
    const seq = ctx.getSequence();

    // a prompt of its own for every run (fresh ids: nothing for a cache to reuse), same generator as ours
    let s = BigInt(o.seed) * 0x9e3779b97f4a7c15n + 0x853c49e6748fea9bn;
    const mask = (1n << 64n) - 1n;
    const randomTokens = (n) => {
        const t = [];
        for (let i = 0; i < n; i++) {
            s = (s * 6364136223846793005n + 1442695040888963407n) & mask;
            t.push(Number((s >> 33n) % BigInt(nVocab)));
        }
        return t;
    };

    // warm-up, untimed: one token touches every weight, as ours does
    await seq.evaluateWithoutGeneratingNewTokens(randomTokens(1));
    await seq.clearHistory();

    await new Promise((r) => setTimeout(r, 100)); // llama.cpp's log lines reach JS asynchronously
    // what llama.cpp resolved "auto" to: a line "Flash Attention enabled|disabled" follows the setting
    const faIdx = logs.findLastIndex((l) => /llama_context:\s+flash_attn\s+=/.test(l.message));
    const faSet = faIdx >= 0 ? logs[faIdx].message.replace(/.*=\s*/, "") : String(ctx.flashAttention);
    const faRes = logs.slice(Math.max(faIdx, 0)).find((l) => /Flash Attention (was .* )?(enabled|disabled)/i.test(l.message));
    const faResolved = faRes ? /enabled/i.exec(faRes.message) ? "enabled" : "disabled" : null;
    const fa = faResolved && faResolved !== faSet ? `${faSet} -> ${faResolved}` : faSet;
    const kv = [...logs].reverse().find((l) => /llama_kv_cache: size =/.test(l.message));
    const cpuLib = logs.find((l) => /loaded CPU backend from/.test(l.message));
    // nothing may log while we time: each line is a callback into JS, a third busy thread on 2 cores
    llama.logLevel = LlamaLogLevel.warn;
    const logsBeforeTiming = logs.length;

    const prefill = [], decode = [];
    for (let k = 0; k < o.repeat; k++) {
        await seq.clearHistory(); // a fresh sequence: nothing of the previous run is in the KV cache
        if (seq.nextTokenIndex !== 0) die(`sequence not empty after clearHistory (${seq.nextTokenIndex})`);
        const prompt = randomTokens(o.prompt);
        const gen = seq.evaluate(prompt, {temperature: 0, yieldEogToken: true}); // greedy, EOS ignored
        const t0 = performance.now();
        let r = await gen.next(); // prefill of the whole prompt + the first sampled token
        const t1 = performance.now();
        if (r.done) die("llama.cpp produced no token after the prompt");
        for (let i = 0; i < o.gen; i++) { // each next() is one decode pass of the previous token
            r = await gen.next();
            if (r.done) die(`generation stopped after ${i} decoded tokens`);
        }
        const t2 = performance.now();
        await gen.return();
        // the same work as ours: prompt + gen tokens went through the model, no more, no fewer
        if (seq.nextTokenIndex !== o.prompt + o.gen)
            die(`llama.cpp evaluated ${seq.nextTokenIndex} tokens, expected ${o.prompt} + ${o.gen}`);
        prefill.push(o.prompt / ((t1 - t0) / 1e3));
        decode.push(o.gen / ((t2 - t1) / 1e3));
    }
    const out = {
        side: "theirs",
        model: o.model,
        node_llama_cpp: version,
        llama_cpp_release: llama.llamaCppRelease?.release ?? null,
        cpu_library: cpuLib ? path.basename(cpuLib.message.replace(/.*loaded CPU backend from\s+/, "")) : null,
        threads: ctx.currentThreads ?? o.threads,
        flash_attn_requested: o.flashAttn,
        flash_attn: fa,
        kv_cache: kv ? (/K \((\w+)\).*V \((\w+)\)/.exec(kv.message) ?? []).slice(1).map((t, i) => `${"KV"[i]} ${t}`).join(", ") : null,
        // how llama.cpp reads the file: its file type and tensor types
        file_type: logs.find((l) => /print_info: file type\s+=/.test(l.message))?.message.replace(/.*=\s*/, "") ?? null,
        tensor_types: logs.filter((l) => /llama_model_loader: - type\s+\S+:\s+\d+ tensors/.test(l.message))
            .map((l) => l.message.replace(/.*- type\s+(\S+):\s+(\d+) tensors.*/, "$1 x$2")).join(", "),
        batch_size: ctx.batchSize,
        context_size: ctx.contextSize,
        log_lines_while_timing: logs.length - logsBeforeTiming,
        // what llama.cpp found questionable in the file (feedback for the GGUF writer)
        llama_cpp_warnings: [...new Set(logs.filter((l) => /^(warn|error)$/i.test(l.level)).map((l) => l.message))],
        prompt_tokens: o.prompt,
        gen_tokens: o.gen,
        prefill_tok_s: median(prefill),
        decode_tok_s: median(decode),
        prefill_tok_s_runs: prefill,
        decode_tok_s_runs: decode
    };
    process.stdout.write(JSON.stringify(out) + "\n");
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
}

/* ---- table: medians and ratios ------------------------------------------------------------------ */

function table(argv) {
    const o = parseArgs(argv, {maxOthers: 10});
    const file = o._?.[0];
    if (!file) die("table needs the .jsonl file");
    const rows = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    const keys = [];
    const by = new Map();
    for (const r of rows) {
        if (!r.label) continue;
        if (!by.has(r.label)) {
            by.set(r.label, {ours: [], theirs: [], label: r.label, shape: r.shape, dtype: r.dtype, file: r.file});
            keys.push(r.label);
        }
        by.get(r.label)[r.side === "ours" ? "ours" : "theirs"].push(r);
    }
    // only processes that ran undisturbed (others' CPU share within --max-others); all, flagged, if none did
    let flagged = false;
    const clean = (list) => {
        const c = list.filter((r) => !(r.others_pct > o.maxOthers));
        if (c.length === 0 && list.length) flagged = true;
        return c.length ? c : list;
    };
    const runs = (list, key) =>
        clean(list).flatMap((r) => (r[`${key}_runs`] ? r[`${key}_runs`].slice(r.warm_runs ?? 0) : [r[key]]));
    const cleanCount = (list) => list.filter((r) => !(r.others_pct > o.maxOthers)).length;
    const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const lines = [];
    const head = ["model", "dtype", "GB", "ours dec", "ours pre", "llama.cpp dec", "llama.cpp pre", "dec ratio", "pre ratio", "ours dec/roof", "l.cpp dec/roof", "BW GB/s", "others %", "clean runs"];
    const body = [];
    let bwAll = [];
    for (const k of keys) {
        const g = by.get(k);
        const od = median(runs(g.ours, "decode_tok_s")), op = median(runs(g.ours, "prefill_tok_s"));
        const td = median(runs(g.theirs, "decode_tok_s")), tp = median(runs(g.theirs, "prefill_tok_s"));
        const bw = median(clean(g.ours).map((r) => r.bandwidth_gb_s));
        bwAll = bwAll.concat(g.ours.map((r) => r.bandwidth_gb_s));
        // roofline from our bytes per token (the KV part counted in f32) at this group's median bandwidth
        const bpt = g.ours[0]?.bytes_per_token;
        const roof = bpt ? (bw * 1e9) / bpt : NaN;
        body.push([g.shape, g.dtype, f((g.ours[0]?.weight_bytes ?? NaN) / 1e9), f(od), f(op), f(td), f(tp),
            f(od / td, 2) + "x", f(op / tp, 2) + "x", f((100 * od) / roof, 1) + "%", f((100 * td) / roof, 1) + "%",
            f(bw, 1), f(median([...g.ours, ...g.theirs].map((r) => r.others_pct ?? NaN).filter(Number.isFinite)), 0),
            `${cleanCount(g.ours)}/${g.ours.length} ${cleanCount(g.theirs)}/${g.theirs.length}` +
                (cleanCount(g.ours) && cleanCount(g.theirs) ? "" : " (!)")]);
    }
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
    const fmt = (r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    lines.push(fmt(head));
    lines.push(widths.map((w) => "-".repeat(w)).join("  "));
    for (const r of body) lines.push(fmt(r));
    // a markdown copy for bench/RESULTS.md
    lines.push("");
    lines.push("| " + head.join(" | ") + " |");
    lines.push("|" + head.map(() => "---").join("|") + "|");
    for (const r of body) lines.push("| " + r.join(" | ") + " |");
    const anyT = rows.find((r) => r.side === "theirs" && r.decode_tok_s_runs);
    const anyO = rows.find((r) => r.side === "ours" && r.decode_tok_s_runs);
    lines.push("");
    if (anyO) lines.push(`ours:      llama-cli bench, ${anyO.threads} threads, kernels ${anyO.cpu_kernels ?? "?"}, KV cache f32`);
    if (anyT)
        lines.push(`llama.cpp: ${anyT.llama_cpp_release ?? "?"} via node-llama-cpp ${anyT.node_llama_cpp}, ${anyT.cpu_library ?? "?"}, ` +
            `${anyT.threads} threads, flash attention ${anyT.flash_attn} (asked: ${anyT.flash_attn_requested}), ` +
            `KV ${anyT.kv_cache ?? "?"}, batch ${anyT.batch_size}, context ${anyT.context_size}`);
    for (const k of keys) {
        const t = by.get(k).theirs[0];
        if (t) lines.push(`llama.cpp reads ${k} as: ${t.file_type ?? "?"} (${t.tensor_types || "?"})`);
    }
    const warned = new Map();
    for (const r of rows)
        for (const w of r.llama_cpp_warnings ?? []) {
            if (!warned.has(w)) warned.set(w, new Set());
            warned.get(w).add(r.label);
        }
    for (const [w, where] of warned) lines.push(`llama.cpp warned: "${w}" (${[...where].join(", ")})`);
    if (bwAll.length)
        lines.push(`bandwidth: our probe, every round of every model: median ${f(median(bwAll), 1)} GB/s, ` +
            `min ${f(Math.min(...bwAll), 1)}, max ${f(Math.max(...bwAll), 1)}`);
    lines.push("tok/s: medians over the timed runs (warm runs left out) of all rounds; ratio = ours / llama.cpp; dec/roof = decode tok/s over " +
        "(bandwidth / our bytes read per decoded token);\n" +
        `others %: median share of the CPUs other processes used while a timed process ran (both sides); ` +
        `clean runs: processes (ours, llama.cpp) with others <= ${o.maxOthers}%, the only ones in the medians` +
        (flagged ? "\n(!) a side had no clean run: its medians use every run, disturbed ones included" : ""));
    process.stdout.write(lines.join("\n") + "\n");
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === "time") await time(rest);
else if (cmd === "table") table(rest);
else die("usage: peer_llamacpp.mjs time --npm-dir DIR --model FILE.gguf [...] | table FILE.jsonl [--max-others P]");
