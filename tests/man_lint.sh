#!/usr/bin/env bash
# tests/man_lint.sh — lint the man pages, and check that each tool's man page documents every
# option its code accepts.
#
#   bash tests/man_lint.sh        (ctest runs it as the test "man_lint"; see tools/man_lint.cmake)
#
# 1. Every man/*.[0-9] is formatted with `groff -man -t -ww -z` (tbl on, all warnings on, no
#    output); any diagnostic at all is a failure.
# 2. Every tools/*.c and tools/*/*.c that calls getopt_long must carry one line
#        /* man: PAGE */              e.g.  /* man: kvfs-bench-tree.1 */
#    naming its page in man/.  Every long option name in each of its `struct option` arrays
#    ({ "name", ..., 'c' }) must appear as --name in that page's OPTIONS section, and every
#    short option given there as a character literal ('c') as -c.
# 3. Every problem code of kvfs-check's phases (tools/check/phase*.c) is a row of the PROBLEMS
#    table in man/kvfs-check.8, and every row there is a code that exists.
#
# Prints one line per problem ("man_lint: FILE: problem") and exits 1 if there was any, else 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export LC_ALL=C

problems=0
problem() { # file, message
  echo "man_lint: $1: $2" >&2
  problems=$((problems + 1))
}

if ! command -v groff >/dev/null 2>&1; then
  echo "man_lint: groff not found (apt-get install groff-base)" >&2
  exit 1
fi

# ---- 1. groff lint -----------------------------------------------------------------------------
n_pages=0
for page in man/*.[0-9]; do
  [ -e "$page" ] || continue
  n_pages=$((n_pages + 1))
  if ! out=$(groff -man -t -ww -z "$page" 2>&1); then
    problem "$page" "groff failed"
  fi
  if [ -n "$out" ]; then
    while IFS= read -r line; do problem "$page" "$line"; done <<<"$out"
  fi
  grep -q '^\.TH ' "$page" || problem "$page" "no .TH line"
  grep -Eq '^\.SH "?NAME"?$' "$page" || problem "$page" "no NAME section"
done

# ---- 2. options in the code vs. OPTIONS in the page --------------------------------------------

# The OPTIONS section of a page, with font escapes, \- and \& removed so that options read as
# typed: "\fB\-\-dir\fR" -> "--dir".
options_section() {
  awk '/^\.SH[ \t]+"?OPTIONS"?[ \t]*$/ { on = 1; next }
       /^\.SH[ \t]/ { on = 0 }
       on' "$1" |
    sed -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\f\[[^]]*\]//g' \
        -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\(en/-/g'
}

# The text of every `struct option NAME[] = { ... };` array in a C file, one entry per line.
option_arrays() {
  awk '/struct[ \t]+option[ \t]+[A-Za-z_0-9]+[ \t]*\[[ \t]*\][ \t]*=/ { on = 1 }
       on { print }
       on && /};/ { on = 0 }' "$1" |
    grep -oE '\{[[:space:]]*"[^"]+"[^}]*\}'
}

n_tools=0
for src in tools/*.c tools/*/*.c; do
  [ -e "$src" ] || continue
  grep -q 'getopt_long' "$src" || continue
  n_tools=$((n_tools + 1))
  name=$(sed -nE 's|^[[:space:]]*/\*[[:space:]]*man:[[:space:]]*([^[:space:]]+)[[:space:]]*\*/[[:space:]]*$|\1|p' "$src" | head -n 1)
  if [ -z "$name" ]; then
    problem "$src" "uses getopt_long but has no '/* man: PAGE */' line naming its man page"
    continue
  fi
  page="man/$name"
  if [ ! -f "$page" ]; then
    problem "$src" "its man page $page does not exist"
    continue
  fi
  section=$(options_section "$page")
  if [ -z "$section" ]; then
    problem "$page" "no OPTIONS section (needed for the options of $src)"
    continue
  fi
  entries=$(option_arrays "$src")
  if [ -z "$entries" ]; then
    problem "$src" "uses getopt_long but no 'struct option NAME[] = { ... };' array was found"
    continue
  fi
  while IFS= read -r entry; do
    long=$(sed -nE 's/^\{[[:space:]]*"([^"]+)".*/\1/p' <<<"$entry")
    short=$(sed -nE "s/.*'(.)'[[:space:]]*\}\$/\\1/p" <<<"$entry")
    if ! grep -Eq -- "(^|[^-A-Za-z0-9_])--${long}([^-A-Za-z0-9_]|\$)" <<<"$section"; then
      problem "$page" "option --$long of $src is not in OPTIONS"
    fi
    if [ -n "$short" ] &&
       ! grep -Eq -- "(^|[^-A-Za-z0-9_])-${short}([^-A-Za-z0-9_]|\$)" <<<"$section"; then
      problem "$page" "option -$short (--$long) of $src is not in OPTIONS"
    fi
  done <<<"$entries"
done

# ---- 3. kvfs-check's problem codes vs. PROBLEMS in man/kvfs-check.8 ---------------------------
# Every code of a phase's table (a string literal such as "SPACE_LEAKED" in tools/check/phase*.c)
# must appear in the page, and every code in the page's table must exist in the code.
n_codes=0
if ls tools/check/phase*.c >/dev/null 2>&1; then
  codes=$(grep -ohE '"[A-Z]+_[A-Z0-9_]+"' tools/check/phase*.c | tr -d '"' | sort -u)
  page_codes=$(awk '/^\.SH[ \t]+"?PROBLEMS"?/ { on = 1; next } /^\.SH[ \t]/ { on = 0 }
                    on && /^[A-Z]+_[A-Z0-9_]+\t/ { sub(/\t.*/, ""); print }' man/kvfs-check.8 | sort -u)
  for code in $codes; do
    n_codes=$((n_codes + 1))
    grep -qx -- "$code" <<<"$page_codes" ||
      problem man/kvfs-check.8 "problem code $code (tools/check/) is not in PROBLEMS"
  done
  for code in $page_codes; do
    grep -qx -- "$code" <<<"$codes" ||
      problem man/kvfs-check.8 "PROBLEMS lists $code, which no phase in tools/check/ reports"
  done
fi

if [ "$problems" -gt 0 ]; then
  echo "man_lint: $problems problem(s)" >&2
  exit 1
fi
echo "man_lint: $n_pages page(s) clean; options of $n_tools tool(s) and $n_codes problem codes documented"
exit 0
