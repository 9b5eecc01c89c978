#!/usr/bin/env bash
# scripts/check_links.py on a fixture checkout: GitHub's anchor slugs (code spans,
# punctuation, repeated headings, explicit anchors) resolve; a missing file, a missing
# anchor, an anchor into a non-Markdown file and an absolute path each fail, named by
# file and line; links inside code are not links.
source "$SOURCE_DIR/tests/e2e/lib.sh"
mkdir -p "$OUT/docs" "$OUT/data"
cat >"$OUT/README.md" <<'MD'
# Title

## Segment real scans: `predict` and `score`
## Repeat
## Repeat
## Data, 128² slices & the U-Net's *widths*
<a name="explicit"></a>

[a](docs/page.md) [b](#segment-real-scans-predict-and-score) [c](#repeat-1)
[d](docs/page.md#run_dir-layout) ![e](data/pic.png) [f](#data-128²-slices--the-u-nets-widths)
[g](https://example.org/missing) [h](#explicit) [i](docs/)

```sh
[not a link](missing-in-code.md)
```
Inline `[also not](missing-in-span.md)` code.

[ref]: docs/page.md#page
MD
printf '# Page\n\n## run_dir layout\n\n[back](../README.md#repeat)\n' >"$OUT/docs/page.md"
printf 'png' >"$OUT/data/pic.png"

run good "$PYTHON3" "$SOURCE_DIR/scripts/check_links.py" --root "$OUT"
expect_rc 0
expect_log "check_links: 11 links in 2 files resolve"

cat >"$OUT/docs/broken.md" <<'MD'
# Broken

[gone](missing.md)
[no anchor](../README.md#repeat-2)
[png anchor](../data/pic.png#top)
[absolute](/README.md)
MD
run broken "$PYTHON3" "$SOURCE_DIR/scripts/check_links.py" --root "$OUT"
expect_rc 1
expect_log "docs/broken.md:3: broken link 'missing.md': 'docs/missing.md' does not exist"
expect_log "docs/broken.md:4: broken link '../README.md#repeat-2': 'README.md' has no heading with the anchor #repeat-2"
expect_log "docs/broken.md:5: broken link '../data/pic.png#top': an #anchor needs a Markdown file"
expect_log "docs/broken.md:6: broken link '/README.md': absolute paths do not resolve"
expect_log "check_links: 4 of 15 links in 3 files do not resolve"
expect_no_log "missing-in-code"; expect_no_log "missing-in-span"
finish
