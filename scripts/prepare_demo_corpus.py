#!/usr/bin/env python3
"""Prepare the training text of the demo model (models/kjv-tiny): the King James Bible (1611, public
domain) from Debian's `bible-kjv-text` package.

Usage:  python3 scripts/prepare_demo_corpus.py [OUT_DIR]        (default OUT_DIR: .devcarry-demo)

Needs apt-get, dpkg-deb and the standard library only (run as root or anyone who may `apt-get download`).
Writes OUT_DIR/kjv.txt and OUT_DIR/kjv.json (source packages, versions, sha256, counts).

`bible-kjv-text` stores the text in the compressed, randomly accessible format of Chip Chapin's
"Bible Retrieval System" (usr/lib/bible.data); the only reader of that format is the `bible` program of
the companion package `bible-kjv` (same source, same version). Both .deb files are downloaded and
unpacked into a scratch folder (nothing is installed), and `bible -l30000 Gen1:1-Rev22:21` dumps the
whole text: a "Book N" line before every chapter, then one "  V text" line per verse.

Output format (what scripts/train_demo_model.py reads): one block per chapter, blocks separated by one
blank line; a block is its heading line ("Genesis 1", "Song of Solomon 2", "1 John 3") followed by the
chapter's verses, one per line, verse numbers removed. The text itself has no other markup (the
package's text is plain ASCII: letters, digits only in headings, and . , ; : ? ! ' ( ) -).
"""
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

PACKAGES = ["bible-kjv-text", "bible-kjv"]
N_BOOKS, N_CHAPTERS, N_VERSES = 66, 1189, 31102
HEADING = re.compile(r"^((?:[1-3] )?[A-Za-z][A-Za-z ]*?) (\d+)$")
VERSE = re.compile(r"^ +(\d+) (\S.*)$")


def sh(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def fetch_and_dump(scratch):
    versions = {}
    for p in PACKAGES:
        sh(["apt-get", "download", p], cwd=scratch)
        deb = sorted(glob.glob(os.path.join(scratch, p + "_*.deb")))[-1]
        versions[p] = sh(["dpkg-deb", "-f", deb, "Version"]).strip()
        sh(["dpkg-deb", "-x", deb, os.path.join(scratch, "root")])
    root = os.path.join(scratch, "root")
    data_dir = os.path.join(root, "usr", "lib")
    text = subprocess.run(
        [os.path.join(root, "usr", "bin", "bible"), "-p", data_dir, "-l30000", "Gen1:1-Rev22:21"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    ).stdout.decode("ascii")
    with open(os.path.join(data_dir, "bible.data"), "rb") as f:
        data_sha = hashlib.sha256(f.read()).hexdigest()
    return text, versions, data_sha


def parse(text):
    """-> list of (book, chapter, [verse texts]) in order, checking the numbering."""
    chapters = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        m = HEADING.match(line)
        if m:
            chapters.append((m.group(1), int(m.group(2)), []))
            continue
        m = VERSE.match(line)
        if not m or not chapters:
            raise SystemExit(f"unexpected line: {line!r}")
        verses = chapters[-1][2]
        if int(m.group(1)) != len(verses) + 1:
            raise SystemExit(f"verse numbering breaks at {chapters[-1][0]} {chapters[-1][1]}:{m.group(1)}")
        verses.append(" ".join(m.group(2).split()))
    books = []
    for book, ch, _ in chapters:
        if not books or books[-1][0] != book:
            books.append([book, 0])
        books[-1][1] += 1
        if ch != books[-1][1]:
            raise SystemExit(f"chapter numbering breaks at {book} {ch}")
    n_verses = sum(len(v) for _, _, v in chapters)
    if (len(books), len(chapters), n_verses) != (N_BOOKS, N_CHAPTERS, N_VERSES):
        raise SystemExit(f"expected {N_BOOKS} books, {N_CHAPTERS} chapters, {N_VERSES} verses; got "
                         f"{len(books)}, {len(chapters)}, {n_verses}")
    return chapters


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else ".devcarry-demo"
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        text, versions, data_sha = fetch_and_dump(scratch)
    chapters = parse(text)
    body = "\n\n".join(f"{b} {c}\n" + "\n".join(v) for b, c, v in chapters) + "\n"
    path = os.path.join(out_dir, "kjv.txt")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(body)
    meta = {
        "file": "kjv.txt",
        "sha256": hashlib.sha256(body.encode("ascii")).hexdigest(),
        "bytes": len(body),
        "books": N_BOOKS,
        "chapters": len(chapters),
        "verses": sum(len(v) for _, _, v in chapters),
        "source": "Debian packages " + ", ".join(f"{p} {v}" for p, v in versions.items())
        + " (text: bible-kjv-text usr/lib/bible.data, read with bible-kjv's `bible` program)",
        "bible_data_sha256": data_sha,
        "licence": "King James Version (1611): public domain (Debian copyright file: 'The copyright for "
                   "the King James Version text of the Bible is expired')",
        "made_by": "scripts/prepare_demo_corpus.py",
    }
    with open(os.path.join(out_dir, "kjv.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
