"""The hand-assembled tokenizer test corpus (imported by scripts/make_tokenizer_fixtures.py).

Every entry is a Python str of valid Unicode scalar values (no lone surrogates), written with
escapes where the character is invisible or easily confused. long_strings() adds a few large,
deterministically generated strings. The committed tests/fixtures/tokenizer/corpus.json is
exactly HAND + long_strings(), in that order.
"""

HAND = [
    # --- trivial / edge -------------------------------------------------------------------------
    "",
    " ",
    "\n",
    "\t",
    "  ",
    "\n\n",
    "a",
    "A",
    "\u0301",  # lone combining acute accent
    "\u0301\u0301\u0301",
    "0",
    ".",
    "'",
    "'s",
    " 's",
    "Hello",
    " Hello",
    "Hello world",
    "Hello, world!",
    "hello  world",
    "  leading and trailing spaces  ",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "tHe QuIcK bRoWn FoX",
    # --- contractions and apostrophes ------------------------------------------------------------
    "I'm here, you're there, he's gone, we've won, they'll see, I'd go, don't, can't.",
    "I'M HERE, YOU'RE THERE, HE'S GONE, WE'VE WON, THEY'LL SEE, I'D GO, DON'T, CAN'T.",
    "It'S a MiXeD cAsE: I'm, I'M, i'M, DoN'T, wOn'T, Y'ALL'D'VE",
    "'tis 'twas 'm 'll 're 've 'd 's 't",
    "rock 'n' roll, o'clock, O'Neil, O'NEIL, l'homme, l'Été",
    "It\u2019s a curly apostrophe \u2014 don\u2019t split it like ASCII.",
    "''''''",
    "'s's's",
    # --- digits ----------------------------------------------------------------------------------
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "12345678901",
    "123456789012",
    " 1 22 333 4444 55555 666666",
    "3.14159265358979",
    "-42, +17, 1e-9, 6.022e23, 0x1F, 0b1010, 0o777",
    "1,000,000 and 1.000.000 and 1 000 000",
    "abc123def4567ghi",
    "A1B2C3D4E5",
    "v2.0.1-rc3",
    "2024-07-26T12:34:56Z",
    "Room 101, 2nd floor, 3rd door, 4th window",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \uff11\uff12\uff13 \u00b2\u00b3 \u2460\u2461 \u216b",  # other digits
    "1\u00a0000\u00a0000",
    "99 bottles of beer on the wall, 99 bottles of beer.",
    "phone: +1 (555) 010-9999",
    # --- Latin with diacritics, precomposed vs combining ------------------------------------------
    "caf\u00e9",
    "cafe\u0301",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve r\u00e9sum\u00e9",
    "Cafe\u0301 cre\u0300me bru\u0302le\u0301e nai\u0308ve re\u0301sume\u0301",
    "\u00c5ngstr\u00f6m vs A\u030angstro\u0308m vs \u212bngstr\u00f6m",
    "Stra\u00dfe STRASSE stra\u00dfe \u1e9e",
    "\u0141\u00f3d\u017a, Krak\u00f3w, Gda\u0144sk, \u017b\u00f3\u0142\u0107",
    "\u010ce\u0161tina: P\u0159\u00edli\u0161 \u017elu\u0165ou\u010dk\u00fd k\u016f\u0148 \u00fap\u011bl \u010f\u00e1belsk\u00e9 \u00f3dy.",
    "Portugu\u00eas: a\u00e7\u00e3o, cora\u00e7\u00e3o, p\u00e3o, ma\u00e7\u00e3",
    "T\u00fcrk\u00e7e: \u0130stanbul, \u0131s\u0131k, I\u0131 \u0130i, \u015fe\u011fer",
    "Vi\u1ec7t Nam: Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u, ng\u01b0\u1eddi, \u0111\u01b0\u1eddng",
    "Vie\u0323\u0302t (decomposed Vi\u1ec7t)",
    "\u00f1 vs n\u0303, \u00fc vs u\u0308, \u00e5 vs a\u030a",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u036b\u0357\u0364lgo text",  # zalgo
    "\ufb01nance \ufb02ow \ufb00 \u2126 \u212a \u00b5 \u03bc",  # ligatures and compat chars
    "\u1e9b\u0323",  # long s with dot above + dot below (NFC reorders)
    "q\u0307\u0323",  # combining marks in non-canonical order
    # --- Greek, Cyrillic, Armenian, Georgian ------------------------------------------------------
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5.",
    "\u0391\u0392\u0393\u0394\u0395 \u03b1\u03b2\u03b3\u03b4\u03b5 \u03c2\u03c3 \u1f00\u1f10\u1f70",
    "\u03b1\u0301 vs \u03ac vs \u1f71",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0421\u042a\u0415\u0428\u042c \u0416\u0415 \u0415\u0429\u0401 \u042d\u0422\u0418\u0425 \u041c\u042f\u0413\u041a\u0418\u0425 \u0424\u0420\u0410\u041d\u0426\u0423\u0417\u0421\u041a\u0418\u0425 \u0411\u0423\u041b\u041e\u041a",
    "\u0451\u043b\u043a\u0430 vs \u0435\u0308\u043b\u043a\u0430, \u0439 vs \u0438\u0306",
    "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430: \u0491\u0430\u043d\u043e\u043a, \u0457\u0436\u0430\u043a, \u0454\u0434\u043d\u0456\u0441\u0442\u044c",
    "\u0532\u0561\u0580\u0565\u0582 \u0561\u0577\u056d\u0561\u0580\u0570 (Armenian)",
    "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 \u10db\u10e1\u10dd\u10e4\u10da\u10d8\u10dd (Georgian)",
    "\u1c90\u1c91\u1c92 Mtavruli",
    # --- RTL: Arabic, Hebrew ----------------------------------------------------------------------
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0633\u064e\u0651\u0644\u0627\u0645\u064f \u0639\u064e\u0644\u064e\u064a\u0652\u0643\u064f\u0645\u0652",
    "\u0639\u062f\u062f \u0661\u0662\u0663 \u0648 123 \u0641\u064a \u062c\u0645\u0644\u0629 \u0648\u0627\u062d\u062f\u0629\u061f",
    "\u0634\u0643\u0631\u0627\u064b \u0644\u0643\u060c \u064a\u0627 \u0635\u062f\u064a\u0642\u064a!",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05b4\u05c1\u05d9\u05ea \u05d1\u05bc\u05b8\u05e8\u05b8\u05d0",
    "English \u05e2\u05d1\u05e8\u05d9\u05ea English \u0627\u0644\u0639\u0631\u0628\u064a\u0629 mixed",
    "\u200f\u05e9\u05dc\u05d5\u05dd\u200e hello \u202b\u0645\u0631\u062d\u0628\u0627\u202c",
    "\u0641\u0627\u0631\u0633\u06cc: \u0633\u0644\u0627\u0645\u060c \u062d\u0627\u0644\u062a \u0686\u0637\u0648\u0631\u0647\u061f",
    # --- Indic, Thai, SE Asian, Ethiopic ---------------------------------------------------------
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092e\u0947\u0902 \u0915\u094d\u0937 \u0924\u094d\u0930 \u091c\u094d\u091e \u0936\u094d\u0930",
    "\u0915\u093c vs \u0958",  # nukta composition exclusion
    "\u09ac\u09be\u0982\u09b2\u09be \u09ad\u09be\u09b7\u09be",
    "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd \u0bae\u0bca\u0bb4\u0bbf",
    "\u0c24\u0c46\u0c32\u0c41\u0c17\u0c41 \u0c2d\u0c3e\u0c37",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e22\u0e34\u0e19\u0e14\u0e35\u0e15\u0e49\u0e2d\u0e19\u0e23\u0e31\u0e1a",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07\u0e23\u0e30\u0e2b\u0e27\u0e48\u0e32\u0e07\u0e04\u0e33",
    "\u0ea5\u0eb2\u0ea7 \u1781\u17d2\u1798\u17c2\u179a \u1019\u103c\u1014\u103a\u1019\u102c",
    "\u12a0\u121b\u122d\u129b \u1230\u120b\u121d \u1290\u12cd (Ethiopic)",
    "\u0d2e\u0d32\u0d2f\u0d3e\u0d33\u0d02 \u0d15\u0d7c",
    "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42 (Tibetan)",
    "\u1780\u17d2\u179a\u17bb\u1784\u1797\u17d2\u1793\u17c6\u1796\u17c1\u1789",
    # --- CJK ----------------------------------------------------------------------------------------
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u6211\u559c\u6b22\u5403\u82f9\u679c\u548c\u9999\u8549\u3002\u4eca\u5929\u5929\u6c23\u5f88\u597d\u3002",
    "\u7e41\u9ad4\u4e2d\u6587\u8207\u7b80\u4f53\u4e2d\u6587",
    "\u4e2d\u6587English\u6df7\u5408123\u6570\u5b57",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57\u3002\u6771\u4eac\u90fd\u306b\u4f4f\u3093\u3067\u3044\u307e\u3059\u3002",
    "\u30ac vs \u30ab\u3099 vs \uff76\uff9e",  # precomposed, combining voiced mark, halfwidth
    "\u304c\u304e\u3050\u3052\u3054 \u304b\u3099\u304d\u3099",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4. \ubc25 \uba39\uc5c8\uc5b4\uc694?",
    "\u1112\u1161\u11ab\u1100\u1173\u11af",  # Hangul jamo (NFC composes to 한글)
    "\ud55c\uae00 vs \u1112\u1161\u11ab\u1100\u1173\u11af",
    "\u3131\u314f\u3134\u3137 compat jamo",
    "\U00020000\U0002a6d6\U0002b740 CJK ext B+",
    "\u3000\u5168\u89d2\u30b9\u30da\u30fc\u30b9\u3000",
    "\uff21\uff22\uff23\uff41\uff42\uff43\uff01\uff1f",  # fullwidth latin
    "\u300c\u5f15\u7528\u300d\u3010\u62ec\u5f27\u3011\u300e\u4e8c\u91cd\u300f",
    "\u2f00\u2f01 radicals \u3280\u32ff enclosed",
    # --- emoji ------------------------------------------------------------------------------------
    "\U0001f600",
    "\U0001f600\U0001f603\U0001f604\U0001f601",
    "I \u2764\ufe0f Unicode \U0001f389\U0001f38a",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family ZWJ
    "\U0001f469\u200d\U0001f4bb \U0001f468\u200d\U0001f373 \U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f44d\U0001f3fb\U0001f44d\U0001f3fc\U0001f44d\U0001f3fd\U0001f44d\U0001f3fe\U0001f44d\U0001f3ff",
    "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7",  # flags
    "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England tag sequence
    "1\ufe0f\u20e3 2\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3",  # keycaps
    "\u263a \u263a\ufe0e \u263a\ufe0f",  # variation selectors
    "\u2600\ufe0f\u2601\ufe0f\u2602\ufe0f",
    "emoji\U0001f680in\U0001f30dthe\U0001f319middle",
    "\U0001f9d1\U0001f3fd\u200d\U0001f91d\u200d\U0001f9d1\U0001f3fb",
    "\U0001faf6\U0001fae0\U0001fab8 new emoji",
    "\u00a9\u00ae\u2122 \u2190\u2191\u2192\u2193 \u2200\u2203\u2208\u2211\u221a\u221e",
    # --- whitespace ---------------------------------------------------------------------------------
    "a b",
    "a  b",
    "a   b",
    "a    b",
    "a\tb",
    "a\t\tb\t",
    "a\nb",
    "a\n\nb",
    "a\n\n\nb",
    "a\r\nb",
    "a\r\n\r\nb",
    "a\rb",
    "\r",
    "\r\n",
    "line1\nline2\r\nline3\rline4",
    "a\u00a0b",
    "a\u00a0\u00a0b",
    "a\u3000b",
    "a\u2028b\u2029c",
    "a\u2002b\u2003c\u2009d\u200ae\u202ff\u205fg",
    "a\u200bb\u200cc\u200dd",  # zero-width chars
    "\ufeffBOM at start",
    "a\u000bb\u000cc",  # vertical tab, form feed
    "a\u0085b",  # NEL
    "   \n   ",
    " \n \n ",
    "\n \n\n  \n\n\n   ",
    "  \t  \t",
    "word \n",
    "word\n ",
    "end with spaces    ",
    "    start with spaces",
    "\t\tstart with tabs",
    "trailing newline\n",
    "trailing newlines\n\n\n",
    "\n\nleading newlines",
    "sentence. \nNext",
    "! ! !  !   !",
    # --- punctuation and symbols -------------------------------------------------------------------
    "Hello!!! What??? Yes... No\u2026 maybe?!",
    "(parentheses) [brackets] {braces} <angles>",
    "\"double\" 'single' `back` \u201ccurly\u201d \u2018curly\u2019 \u00abguillemets\u00bb \u201elow\u201c",
    "a--b---c\u2014d\u2013e",
    "~!@#$%^&*()_+-=[]{}|;':\",./<>?",
    "$100 \u20ac200 \u00a3300 \u00a5400 \u20b9500 \u20bf0.01",
    "50% off!!! 100%!!",
    "...",
    "!?.,;:",
    "----------",
    "==========",
    "**********",
    "__init__",
    "#hashtag @mention",
    "\u00bf\u00a1Hola!?",
    # --- code ------------------------------------------------------------------------------------
    "int main(void) {\n    printf(\"Hello, world!\\n\");\n    return 0;\n}\n",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\nstatic const char *s = \"x\\ty\";\n",
    "for (size_t i = 0; i < n; ++i) {\n\tif (a[i] != b[i]) return -1;\n}",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, x: int = 42) -> None:\n        self._x = x  # comment\n",
    "    indented four\n        indented eight\n\tindented tab\n",
    "import numpy as np\nx = np.arange(10)**2\nprint(f\"{x.sum():,}\")",
    "{\"name\": \"llamac\", \"version\": 1, \"tags\": [\"c\", \"llm\"], \"nested\": {\"a\": null, \"b\": true}}",
    "{\n  \"key\": \"value\",\n  \"num\": -1.5e+10,\n  \"arr\": [1, 2, 3]\n}",
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>Test</title></head>\n<body>\n  <p class=\"x\">Hi &amp; bye</p>\n</body>\n</html>",
    "<div id='main'><span>text</span><br/></div>",
    "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@\\w+\\.[a-z]{2,}$",
    "s/\\s+$//g; /[A-Z]\\d{3,}/i",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  echo \"$f\" | tr 'a-z' 'A-Z' > \"${f%.txt}.out\"\ndone\n",
    "ls -la | grep -v '^d' | awk '{print $9}' 2>/dev/null && echo ok || exit 1",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{:?}\", v);\n}",
    "const f = async (x) => { await fetch(`/api/${x}`); return x ?? null; };",
    "x+=1;y-=2;z*=3;w/=4;a<<=1;b>>=2;c&&d||e!f",
    "if(a==b&&c!=d){e=f;}else{g=h;}",
    "\t\t\t\treturn;\n\t\t\t}\n\t\t}\n\t}\n}",
    "        \n        x = 1\n        \n",
    "// TODO: fix\n/* multi\n   line */\n",
    # --- URLs, emails, paths ----------------------------------------------------------------------
    "https://www.example.com/path/to/page?query=1&lang=en#section-2",
    "http://localhost:8080/api/v1/users/42",
    "ftp://user:pass@ftp.example.org/pub/file.tar.gz",
    "Contact: john.doe+tag@example.co.uk, jane_doe@sub.example.com",
    "/usr/local/lib/python3.11/site-packages/foo/__init__.py",
    "C:\\Users\\Name\\Documents\\file (1).txt",
    "www.\u4f8b\u3048.jp and https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/\u043f\u0443\u0442\u044c",
    # --- Markdown -------------------------------------------------------------------------------
    "# Title\n\n## Subtitle\n\n- item 1\n- item 2\n  - nested\n\n1. first\n2. second\n",
    "**bold** *italic* `code` ~~strike~~ [link](https://example.com) ![img](a.png)",
    "```python\nprint('hi')\n```\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "> quote\n>> nested quote\n\n---\n",
    "$E = mc^2$ and $$\\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2}$$",
    # --- special-token text as plain strings -----------------------------------------------------
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<think>",
    "</think>",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<|im_",
    "<|im_start",
    "<|im_start|",
    "|im_start|>",
    "<|im_start|><|im_start|>",
    "<<|im_start|>>",
    " <|im_start|> ",
    "<|IM_START|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_250|>",
    "<|python_tag|>",
    "<|fim_prefix|>def<|fim_suffix|>\n<|fim_middle|>",
    "<s>",
    "</s>",
    "<unk>",
    "<s>Hello</s>",
    " <s> </s> ",
    "<s><s></s></s>",
    "<mask>",
    "a<mask>b",
    "a <mask> b",
    "a  <mask>  b",
    "[WORD]",
    "[WORD] is a word",
    "x[WORD]y",
    "the [WORD] inside",
    "hello world",
    "say hello world twice: hello world",
    "caf\u00e9 caf\u00e9",
    "cafe\u0301 and caf\u00e9 and CAF\u00c9",
    "<|begin_of_text|><s><|im_start|><mask>[WORD]",
    # --- replacement char, private use, noncharacters, controls ----------------------------------
    "\ufffd",
    "broken \ufffd\ufffd bytes",
    "\ue000\ue001\uf8ff private use",
    "\U000f0000\U0010fffd supplementary private use",
    "\ufdd0\ufffe\uffff\U0010ffff noncharacters",
    "\u0000",
    "a\u0000b",
    "\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008",
    "\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f",
    "\u001b[31mred\u001b[0m",
    "\u007f\u0080\u0081\u009f",
    "\u00ad soft hyphen and \u2060 word joiner",
    "\U0001d400\U0001d401\U0001d402 math bold \U0001d7ce\U0001d7cf",
    "\U00010348 gothic \U00013000 hieroglyph \U0001f0a1 card",
    # --- mixed scripts ---------------------------------------------------------------------------
    "Hello \u4e16\u754c \u041f\u0440\u0438\u0432\u0435\u0442 \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u3053\u3093\u306b\u3061\u306f \uc548\ub155 \U0001f44b",
    "abc\u4e2d\u6587def\u0645\u0631\u062dghi",
    "Tokyo\u6771\u4eac2024\u5e74",
    "e\u0301\u0301\u0301 stacked",
    "\u0915\u094d\u200d\u0937 ZWJ in Devanagari",
    "ABC\u0410\u0412\u0421\u0391\u0392\u0395",  # Latin/Cyrillic/Greek lookalikes
    # --- prose ------------------------------------------------------------------------------------
    "Call me Ishmael. Some years ago\u2014never mind how long precisely\u2014having little or no money in my purse.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
    "Der schnelle braune Fuchs springt \u00fcber den faulen Hund. \u00c4rger, \u00d6l, \u00dcbel.",
    "Le c\u0153ur a ses raisons que la raison ne conna\u00eet point.",
    "El ping\u00fcino Wenceslao hizo kil\u00f3metros bajo exhaustiva lluvia y fr\u00edo.",
    "Pchn\u0105\u0107 w t\u0119 \u0142\u00f3d\u017a je\u017ca lub o\u015bm skrzy\u0144 fig.",
    "V\u00e5r \u00e6ble \u00f8 \u00c5 \u00c6 \u00d8 \u00fe\u00f0 \u00de\u00d0",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababababababab",
    "ThisIsCamelCaseAndSnake_case_and-kebab-case",
    "e.g. i.e. etc. Mr. Mrs. Dr. U.S.A.",
    "New\nYork\n\nCity",
]


def long_strings():
    """Deterministic large strings (no RNG: the content is a pure function of the code)."""
    prose_words = (
        "the of and to in a is that for it as was with be by on not he I this are or his from at which "
        "but have an they you were her she there one all we can their has been if more when will would "
        "who so no tokenizer merges bytes vocabulary caf\u00e9 na\u00efve \u00fcber \u4e16\u754c "
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u0645\u0631\u062d\u0628\u0627 \U0001f600 2024 3.14 don't I'M"
    ).split(" ")
    # 1. mixed prose ~ 24 KB: a linear congruential walk over the word list, with punctuation,
    # paragraph breaks and the odd double space.
    out, state = [], 12345
    while sum(len(w) + 1 for w in out) < 24000:
        state = (state * 1103515245 + 12345) % (1 << 31)
        w = prose_words[state % len(prose_words)]
        r = (state >> 8) % 29
        if r == 0:
            w += ".\n\n"
        elif r == 1:
            w += ","
        elif r == 2:
            w += "  "
        elif r == 3:
            w = w.capitalize()
        out.append(w)
    prose = " ".join(out)

    # 2. code ~ 12 KB: a generated C file with nested indentation.
    lines = ["#include <stdint.h>", ""]
    fn = 0
    while sum(len(x) + 1 for x in lines) < 12000:
        lines += [
            f"static int32_t helper_{fn}(const int32_t *v, size_t n) {{",
            "    int32_t acc = 0;",
            "    for (size_t i = 0; i < n; ++i) {",
            f"        if (v[i] % {fn + 2} == 0) {{",
            f"            acc += v[i] * {fn * 7 + 3};",
            "        } else {",
            f"\t\t\tacc ^= (int32_t)(i << {fn % 5});",
            "        }",
            "    }",
            f"    return acc; /* helper {fn}: \u00e9t\u00e9 */",
            "}",
            "",
        ]
        fn += 1
    code = "\n".join(lines)

    # 3. a 6000-digit run (digits of a simple recurrence), 4. 5000 spaces, 5. mixed-script block.
    digits, x = [], 7
    for _ in range(6000):
        x = (x * 48271) % 2147483647
        digits.append(str(x % 10))
    digit_run = "".join(digits)
    spaces = " " * 5000
    mixed = (
        "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3002\ud55c\uad6d\uc5b4 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac "
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0e44\u0e17\u0e22 \U0001f468\u200d\U0001f469\u200d\U0001f467 "
        "e\u0301 \u1112\u1161\u11ab \r\n\t \u00a0\u3000 12345678 <|im_start|> <s> "
    ) * 60
    return [prose, code, digit_run, spaces, mixed]


def corpus():
    return list(HAND) + long_strings()
