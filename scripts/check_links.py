#!/usr/bin/env python3
"""Checks that every relative link and #anchor in the user documentation resolves.

Reads the top-level *.md files, docs/*.md and data/*.md of a checkout (or the files
given), finds every Markdown link and image outside code ([text](target), ![alt](target),
[id]: target), and fails, naming file, line and target, when a relative target is not a
file or folder of the checkout, or when its #anchor is not a heading (or an explicit
<a name>/id) of the Markdown file it points to. Anchors follow GitHub's slugs: the
heading's rendered text, lower-cased, with punctuation other than '-' and '_' removed,
spaces made '-' (letters, digits, marks and connector punctuation kept), and repeats numbered -1, -2, ... External links (http:, mailto:, ...)
are not fetched. Standard library only, so it runs anywhere CI runs.

    scripts/check_links.py [--root DIR] [FILE.md ...]
"""
import argparse
import os
import re
import sys
import unicodedata

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^()\s>]*(?:\([^()\s]*\)[^()\s>]*)*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"|\sid=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text):
    """(line number, line) of the lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def rendered_text(heading):
    """A heading's text as GitHub renders it: links become their text, code spans their
    content, emphasis markers and HTML tags go."""
    text = INLINE_LINK.sub(lambda m: m.group(1), heading)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("*", "")


def slug(text):
    """GitHub's anchor for a heading's rendered text (before numbering repeats)."""
    out = []
    for ch in rendered_text(text).strip().lower():
        if ch == "-" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


_anchors = {}


def anchors_of(path):
    """Every anchor a Markdown file defines."""
    cache = _anchors
    if path not in cache:
        found, seen = set(), {}
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for _, line in prose_lines(text):
            for m in HTML_ANCHOR.finditer(line):
                found.add(m.group(1) or m.group(2))
            h = HEADING.match(line)
            if not h:
                continue
            base = slug(h.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def links_of(text):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        m = REF_DEF.match(line)
        if m:
            yield number, m.group(1)
            continue
        line = CODE_SPAN.sub("", line)
        for m in INLINE_LINK.finditer(line):
            yield number, m.group(2)


def check_link(source, target, root):
    """None when target resolves from source, else why not."""
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None
    path, _, anchor = target.partition("#")
    if path.startswith("/"):
        return "absolute paths do not resolve on GitHub or in a clone; link relatively"
    dest = os.path.normpath(os.path.join(os.path.dirname(source), path)) if path else source
    if os.path.relpath(dest, root).split(os.sep)[0] == "..":
        return f"'{path}' points outside the checkout"
    if not os.path.exists(dest):
        return f"'{os.path.relpath(dest, root)}' does not exist"
    if anchor:
        if not dest.endswith(".md") or not os.path.isfile(dest):
            return f"an #anchor needs a Markdown file, and '{os.path.relpath(dest, root)}' is not one"
        if anchor not in anchors_of(dest):
            return f"'{os.path.relpath(dest, root)}' has no heading with the anchor #{anchor}"
    return None


def default_files(root):
    files = []
    for folder in ("", "docs", "data"):
        d = os.path.join(root, folder)
        if os.path.isdir(d):
            files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".md"))
    return files


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   help="the checkout (default: this script's)")
    p.add_argument("files", nargs="*", help="Markdown files (default: *.md, docs/*.md, data/*.md of the root)")
    args = p.parse_args()
    root = os.path.abspath(args.root)
    files = [os.path.abspath(f) for f in args.files] or default_files(root)
    broken = links = 0
    for source in files:
        with open(source, encoding="utf-8") as f:
            text = f.read()
        for number, target in links_of(text):
            links += 1
            why = check_link(source, target, root)
            if why:
                broken += 1
                print(f"{os.path.relpath(source, root)}:{number}: broken link '{target}': {why}")
    if broken:
        print(f"check_links: {broken} of {links} links in {len(files)} files do not resolve")
        return 1
    print(f"check_links: {links} links in {len(files)} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
