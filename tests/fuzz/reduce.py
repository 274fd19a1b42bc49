#!/usr/bin/env python3
# tests/fuzz/reduce.py — shrink a crashing fuzz input for tests/fuzz/regress.c by zeroing
# bytes rather than cutting them (libFuzzer's -minimize_crash only shortens, and a data file
# cannot lose pages without changing meaning): whole 4 KiB pages first, then 512-, 64-, 8-
# and 1-byte pieces, keeping each zeroing after which the harness still fails the same way.
# The result is mostly zeros, which regress.c stores sparsely.
#
#   tests/fuzz/reduce.py HARNESS_BINARY CRASH_INPUT OUTPUT [PATTERN]
#
# PATTERN (a regular expression, default taken from the first run: the sanitizer's or the
# harness's first error line, without addresses) must appear in the failing run's output.
# Each try runs the harness binary once on the candidate (a libFuzzer binary given a file
# runs it once); a few hundred tries take a minute or two.
import re
import subprocess
import sys
import tempfile


def run(binary, data):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
        path = f.name
    p = subprocess.run([binary, "-close_fd_mask=1", path], capture_output=True, timeout=120)
    out = p.stderr.decode("utf-8", "replace")
    return p.returncode != 0, out


def signature(out):
    for line in out.splitlines():
        m = re.search(r"(runtime error: [^0]*|ERROR: AddressSanitizer: [\w-]+|"
                      r"broken promise: [^:0-9]*|ERROR: LeakSanitizer|"
                      r"ERROR: libFuzzer: timeout)", line)
        if m:
            return re.escape(m.group(1).strip())
    return None


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: reduce.py HARNESS_BINARY CRASH_INPUT OUTPUT [PATTERN]")
    binary, src, dst = sys.argv[1:4]
    data = bytearray(open(src, "rb").read())
    failed, out = run(binary, bytes(data))
    pat = sys.argv[4] if len(sys.argv) == 5 else signature(out)
    if not failed or not pat or not re.search(pat, out):
        sys.exit("reduce.py: the input does not fail (or no error line found)")
    print("pattern:", pat)
    tries = 0
    for size in (4096, 512, 64, 8, 1):
        # keep the first byte (the flags) as it is
        for off in range(1, len(data), size):
            end = min(off + size, len(data))
            if not any(data[off:end]):
                continue
            cand = bytearray(data)
            cand[off:end] = bytes(end - off)
            tries += 1
            failed, out = run(binary, bytes(cand))
            if failed and re.search(pat, out):
                data = cand
        print("after %d-byte pieces: %d nonzero bytes (%d tries)" %
              (size, sum(1 for b in data if b), tries))
    open(dst, "wb").write(bytes(data))


if __name__ == "__main__":
    main()
