#!/usr/bin/env bash
# A page of docs/ that the CLI generates, against what the CLI prints now:
#   generated_doc_test.sh PAGE ARGS...   (PAGE relative to the source dir)
# docs/configuration.md is `brats_recipe config --reference` and docs/cli.md is
# `brats_recipe help --markdown`: a key, an option or a description changed in the code
# fails here until the page is regenerated with the command printed.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
page=$1; shift

run generate "$B" "$@"
expect_rc 0
if ! diff -u "$SOURCE_DIR/$page" "$LOG" >"$OUT/diff.txt"; then
  LOG=$OUT/diff.txt
  fail "$page differs from \`brats_recipe $*\` (diff above, page first): regenerate it from the repository root with
  build/bin/brats_recipe $* > $page"
fi
finish
