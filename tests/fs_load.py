#!/usr/bin/env python3
"""tests/fs_load.py — random file operations on a kvfs mount with a journal, and the checker that
compares a subtree with the model the journal replays to (tests/fs_torture.sh uses both).

  fs_load.py load ROOT JOURNAL SEED MAXOPS [SECONDS]
      Run up to MAXOPS random operations (for at most SECONDS, default 60) in the existing,
      empty directory ROOT: create, write at offset, append, truncate, rename (of files and of
      directories, also over an existing file), link, unlink, unlink of a file held open
      (then written through its descriptor and closed), mkdir, rmdir, fsync.  Every
      operation is chosen valid for the model (so on a healthy mount it succeeds) and is one
      system call that changes what the model sees (one FUSE request: writes are at most 16
      KiB), so its effect is wholly present or wholly absent after a crash.  Before the call a line
      "I SEQ OP ARGS" is appended to JOURNAL (outside the mount), after it returned "D SEQ"
      (for an fsync that is the fsync's marker).  The first failing call ends the run with
      "E SEQ ERRNAME": the daemon was killed (ENOTCONN, ECONNABORTED).  The journal is
      written with write(2) on an O_APPEND descriptor: each line is in the file before the
      next call starts, whatever happens to this process later.

  fs_load.py verify [--final] ROOT JOURNAL [ROOT JOURNAL ...]
      Replay each JOURNAL into a model: every operation marked D is applied; the one operation
      that may have been in flight (an I without D: the run ended there, with or without an E
      line) may or may not have taken effect, so the subtree must equal the model without it
      (state 0) or with it (state 1).  The state found is written to JOURNAL.res, and --final
      requires the state recorded there.  A run that ended on an error other than ENOTCONN or
      ECONNABORTED fails (the mount answered a valid operation with an error).  Compared: the
      set of directories, the set of files, each file's bytes, and which paths are hard links
      of one inode (st_ino classes and st_nlink).  Not compared: modes, owners, times.
      Prints one "MISMATCH ROOT: path: expected ...; actual ..." line per difference and exits
      1 on any; exits 0 when every subtree matches.

  fs_load.py fill DIR LISTING SEED SIZE MAXFILES
  fs_load.py checkfill DIR LISTING SEED SIZE
      tests/fs_fulldisk.sh: write files of SIZE bytes into DIR, each fsynced, listing every
      one whose fsync returned and then the error that stopped the writer ("E ENOSPC");
      then check that every listed file holds its bytes.

Contents are reproducible from the journal: the bytes of the write (or append) with sequence
number SEQ are random.Random(SEED * 1000003 + SEQ).randbytes(LEN), with SEED from the journal's
first line ("S SEED").  Each load process works in its own ROOT, so its journal alone
determines that subtree.
"""
import errno
import os
import random
import sys
import time

MAX_WRITE = 16384
CRASH_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)


def content(seed, seq, n):
    return random.Random(seed * 1000003 + seq).randbytes(n)


class Model:
    """Directories, names and inodes of one subtree; paths are relative to ROOT ('' is ROOT)."""

    def __init__(self):
        self.dirs = {""}
        self.files = {}   # path -> inode id
        self.data = {}    # inode id -> bytearray
        self.next_ino = 1

    def copy(self):
        m = Model()
        m.dirs = set(self.dirs)
        m.files = dict(self.files)
        m.data = {k: bytearray(v) for k, v in self.data.items()}
        m.next_ino = self.next_ino
        return m

    def nlink(self, ino):
        return sum(1 for i in self.files.values() if i == ino)

    def children(self, d):
        pre = d + "/" if d else ""
        return [p for p in list(self.dirs) + list(self.files)
                if p != d and p.startswith(pre) and "/" not in p[len(pre):]]

    def drop_name(self, path):
        ino = self.files.pop(path)
        if ino not in self.files.values():
            del self.data[ino]

    def apply(self, seed, seq, op, args, cut=None):
        """Apply one journal operation; raise ValueError when it is not valid here.  cut: for
        a write or append, apply only its bytes before file offset `cut`."""
        if op == "create":
            (p,) = args
            self._need_new(p)
            self.files[p] = self.next_ino
            self.data[self.next_ino] = bytearray()
            self.next_ino += 1
        elif op in ("write", "append"):
            p, off, n = args[0], int(args[1]), int(args[2])
            d = self.data[self._file(p)]
            if op == "append":
                off = len(d)
            buf = content(seed, seq, n)
            if cut is not None:
                buf = buf[:cut - off]
            if len(d) < off:
                d.extend(bytes(off - len(d)))
            d[off:off + len(buf)] = buf
        elif op == "truncate":
            p, n = args[0], int(args[1])
            d = self.data[self._file(p)]
            if n < len(d):
                del d[n:]
            else:
                d.extend(bytes(n - len(d)))
        elif op == "rename":
            src, dst = args
            if src in self.files:
                if dst in self.files:
                    self.drop_name(dst)
                else:
                    self._need_new(dst)
                self.files[dst] = self.files.pop(src)
            elif src in self.dirs and src:
                self._need_new(dst)
                if dst.startswith(src + "/"):
                    raise ValueError("rename of %s into itself" % src)
                pre = src + "/"
                for d in [d for d in self.dirs if d == src or d.startswith(pre)]:
                    self.dirs.remove(d)
                    self.dirs.add(dst + d[len(src):])
                for f in [f for f in self.files if f.startswith(pre)]:
                    self.files[dst + f[len(src):]] = self.files.pop(f)
            else:
                raise ValueError("rename of missing %s" % src)
        elif op == "link":
            src, dst = args
            ino = self._file(src)
            self._need_new(dst)
            self.files[dst] = ino
        elif op in ("unlink", "unlink_open"):
            (p,) = args
            self._file(p)
            self.drop_name(p)
        elif op == "mkdir":
            (p,) = args
            self._need_new(p)
            self.dirs.add(p)
        elif op == "rmdir":
            (p,) = args
            if p not in self.dirs or not p or self.children(p):
                raise ValueError("rmdir of %s" % p)
            self.dirs.remove(p)
        elif op == "fsync":
            self._file(args[0])
        else:
            raise ValueError("unknown operation %s" % op)

    def _parent_ok(self, p):
        return os.path.dirname(p) in self.dirs

    def _need_new(self, p):
        if not p or p in self.dirs or p in self.files or not self._parent_ok(p):
            raise ValueError("%s exists or has no parent" % p)

    def _file(self, p):
        if p not in self.files:
            raise ValueError("no file %s" % p)
        return self.files[p]


# ---------------------------------------------------------------- load

def pick_op(m, rng, seq):
    """An operation valid in m: (op, args)."""
    dirs = sorted(m.dirs)
    files = sorted(m.files)
    new = lambda: os.path.join(rng.choice(dirs), "n%d" % seq)
    w = rng.random()
    if not files or w < 0.12:
        return "create", [new()]
    if w < 0.34:
        p = rng.choice(files)
        size = len(m.data[m.files[p]])
        return "write", [p, str(rng.randrange(0, size + 4097)), str(rng.randrange(1, MAX_WRITE + 1))]
    if w < 0.44:
        return "append", [rng.choice(files), "0", str(rng.randrange(1, MAX_WRITE + 1))]
    if w < 0.52:
        p = rng.choice(files)
        size = len(m.data[m.files[p]])
        return "truncate", [p, str(rng.randrange(0, size * 3 // 2 + 100))]
    if w < 0.64:
        if rng.random() < 0.25 and len(dirs) > 1:
            src = rng.choice(dirs[1:])
            cand = [d for d in dirs if d != src and not d.startswith(src + "/")]
            return "rename", [src, os.path.join(rng.choice(cand), "n%d" % seq)]
        src = rng.choice(files)
        others = [f for f in files if m.files[f] != m.files[src]]
        if others and rng.random() < 0.3:
            return "rename", [src, rng.choice(others)]
        return "rename", [src, new()]
    if w < 0.70:
        return "link", [rng.choice(files), new()]
    if w < 0.80:
        # a third of them on a file held open, whose only name it is: the daemon keeps the
        # inode as an orphan until the release, and a kill in between leaves it for the next
        # open to purge (the fd's writes after the unlink reach no name the model knows)
        only = [f for f in files if sum(1 for i in m.files.values() if i == m.files[f]) == 1]
        if only and rng.random() < 0.33:
            return "unlink_open", [rng.choice(only)]
        return "unlink", [rng.choice(files)]
    if w < 0.87:
        return "mkdir", [new()]
    if w < 0.92:
        empty = [d for d in dirs[1:] if not m.children(d)]
        if empty:
            return "rmdir", [rng.choice(empty)]
        return "mkdir", [new()]
    return "fsync", [rng.choice(files)]


def do_op(root, seed, seq, op, args):
    P = lambda p: os.path.join(root, p)
    if op == "create":
        os.close(os.open(P(args[0]), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op in ("write", "append"):
        flags = os.O_WRONLY | (os.O_APPEND if op == "append" else 0)
        fd = os.open(P(args[0]), flags)
        try:
            buf = content(seed, seq, int(args[2]))
            n = os.pwrite(fd, buf, int(args[1])) if op == "write" else os.write(fd, buf)
            if n != len(buf):
                raise OSError(errno.EIO, "short write %d of %d" % (n, len(buf)))
        finally:
            os.close(fd)
    elif op == "truncate":
        os.truncate(P(args[0]), int(args[1]))
    elif op == "rename":
        os.rename(P(args[0]), P(args[1]))
    elif op == "link":
        os.link(P(args[0]), P(args[1]))
    elif op == "unlink":
        os.unlink(P(args[0]))
    elif op == "unlink_open":
        fd = os.open(P(args[0]), os.O_RDWR)
        try:
            os.unlink(P(args[0]))
            os.pwrite(fd, content(seed, seq, 4096), 0)  # into the orphan
        finally:
            os.close(fd)
    elif op == "mkdir":
        os.mkdir(P(args[0]))
    elif op == "rmdir":
        os.rmdir(P(args[0]))
    elif op == "fsync":
        fd = os.open(P(args[0]), os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load(root, journal, seed, maxops, seconds):
    rng = random.Random(seed)
    m = Model()
    jfd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    jw = lambda s: os.write(jfd, (s + "\n").encode())
    jw("S %d" % seed)
    deadline = time.monotonic() + seconds
    for seq in range(1, maxops + 1):
        if time.monotonic() > deadline:
            break
        op, args = pick_op(m, rng, seq)
        jw("I %d %s %s" % (seq, op, " ".join(args)))
        try:
            do_op(root, seed, seq, op, args)
        except OSError as e:
            jw("E %d %s" % (seq, errno.errorcode.get(e.errno, str(e.errno))))
            return 0
        jw("D %d" % seq)
        m.apply(seed, seq, op, args)
    return 0


# ---------------------------------------------------------------- fill (tests/fs_fulldisk.sh)

def fill(d, listing, seed, size, maxfiles):
    """Write files d/fNNNNN of `size` bytes each (contents: content(seed, N, size)), fsync each,
    and append its name to `listing` once the fsync returned; stop at the first error, appended
    as "E ERRNAME".  A short write counts as the error it ends on."""
    lfd = os.open(listing, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    for i in range(maxfiles):
        name = "f%05d" % i
        try:
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                buf = content(seed, i, size)
                off = 0
                while off < size:  # a short write is followed by a call that says why
                    off += os.pwrite(fd, buf[off:off + 65536], off)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            os.write(lfd, ("E %s\n" % errno.errorcode.get(e.errno, str(e.errno))).encode())
            return 0
        os.write(lfd, (name + "\n").encode())
    os.write(lfd, b"E none\n")
    return 0


def checkfill(d, listing, seed, size):
    """Every file named in `listing` is in d with its contents.  Prints MISMATCH lines."""
    bad = 0
    n = 0
    for line in open(listing):
        name = line.strip()
        if not name or name.startswith("E "):
            continue
        i = int(name[1:])
        p = os.path.join(d, name)
        try:
            with open(p, "rb") as f:
                got = f.read()
        except OSError as e:
            print("MISMATCH %s: expected %d bytes; actual: %s" % (p, size, e.strerror))
            bad += 1
            continue
        want = content(seed, i, size)
        if got != want:
            at = next((k for k in range(min(len(got), size)) if got[k] != want[k]),
                      min(len(got), size))
            print("MISMATCH %s: expected %s; actual %s; first difference at byte %d" % (
                p, show(want), show(got), at))
            bad += 1
        n += 1
    return 1 if bad else 0


# ---------------------------------------------------------------- verify

def replay(journal):
    """(state 0, state 1 or None, error text or None)."""
    seed = None
    m = Model()
    pending = None  # (seq, op, args) started, not returned
    err = None
    with open(journal) as f:
        for ln, line in enumerate(f, 1):
            w = line.split()
            if not w:
                continue
            if w[0] == "S":
                seed = int(w[1])
            elif w[0] == "I":
                if pending:
                    return None, None, "line %d: op %s started before op %s returned" % (
                        ln, w[1], pending[0])
                pending = (int(w[1]), w[2], w[3:])
            elif w[0] == "D":
                if not pending or pending[0] != int(w[1]):
                    return None, None, "line %d: D %s without its I" % (ln, w[1])
                try:
                    m.apply(seed, *pending)
                except (ValueError, KeyError) as e:
                    return None, None, "line %d: replay of op %s: %s" % (ln, w[1], e)
                pending = None
            elif w[0] == "E":
                if errno.errorcode.get(errno.ENOTCONN) != w[2] and \
                   errno.errorcode.get(errno.ECONNABORTED) != w[2]:
                    err = "op %s %s %s failed with %s on a live mount" % (
                        w[1], pending[1] if pending else "?",
                        " ".join(pending[2]) if pending else "", w[2])
    return m, in_flight_states(m, seed, pending), err


def in_flight_states(m, seed, pending):
    """The states the in-flight operation may have left: [m with all of it applied] and, for a
    write or append, m with each page-aligned prefix of it applied.  The kernel may send one
    write(2) as several FUSE requests: a write that starts inside a page that is not in the
    page cache goes out as that partial page alone, then the rest (fs/fuse/file.c,
    fuse_fill_write_pages), so a crash between them leaves a prefix cut at a page boundary."""
    if not pending:
        return []
    seq, op, args = pending
    out = []
    try:
        m1 = m.copy()
        m1.apply(seed, seq, op, args)
        out.append(m1)
    except (ValueError, KeyError):
        return []
    if op in ("write", "append"):
        off = int(args[1]) if op == "write" else len(m.data[m.files[args[0]]])
        end = off + int(args[2])
        for cut in range((off // 4096 + 1) * 4096, end, 4096):
            mc = m.copy()
            mc.apply(seed, seq, op, args, cut)
            out.append(mc)
    return out


def actual(root):
    """A Model-like snapshot of ROOT: dirs, files (path -> st_ino), data (st_ino -> bytes),
    nlink (path -> st_nlink)."""
    dirs, files, data, nlink = {""}, {}, {}, {}
    for d, dn, fn in os.walk(root):
        rel = os.path.relpath(d, root)
        rel = "" if rel == "." else rel
        for n in dn:
            dirs.add(os.path.join(rel, n))
        for n in fn:
            p = os.path.join(rel, n)
            st = os.lstat(os.path.join(root, p))
            files[p] = st.st_ino
            nlink[p] = st.st_nlink
            if st.st_ino not in data:
                with open(os.path.join(root, p), "rb") as f:
                    data[st.st_ino] = f.read()
    return dirs, files, data, nlink


def show(b):
    if b is None:
        return "absent"
    return "%d bytes%s" % (len(b), "" if not b else " (first bytes %s)" % bytes(b[:8]).hex())


def diff(m, a):
    """Differences between model m and actual a, as 'path: expected X; actual Y' strings."""
    dirs, files, data, nlink = a
    out = []
    for p in sorted(m.dirs ^ dirs):
        out.append("%s: expected %s; actual %s" % (p or ".", "a directory" if p in m.dirs else "no directory",
                                                  "a directory" if p in dirs else "no directory"))
    for p in sorted(set(m.files) | set(files)):
        e = m.data[m.files[p]] if p in m.files else None
        g = data[files[p]] if p in files else None
        if e is None or g is None:
            out.append("%s: expected file %s; actual file %s" % (p, show(e), show(g)))
            continue
        if bytes(e) != g:
            at = next((i for i in range(min(len(e), len(g))) if e[i] != g[i]), min(len(e), len(g)))
            out.append("%s: expected %s; actual %s; first difference at byte %d" % (
                p, show(e), show(g), at))
        if m.nlink(m.files[p]) != nlink[p]:
            out.append("%s: expected nlink %d; actual nlink %d" % (p, m.nlink(m.files[p]), nlink[p]))
    # hard-link classes: paths sharing a model inode must share an st_ino, and only those
    for p in sorted(set(m.files) & set(files)):
        same_m = sorted(q for q in m.files if m.files[q] == m.files[p] and q in files)
        same_a = sorted(q for q in files if files[q] == files[p] and q in m.files)
        if same_m != same_a:
            out.append("%s: expected links %s; actual links %s" % (p, same_m, same_a))
    return out


def verify(final, pairs):
    bad = 0
    for root, journal in pairs:
        m0, alts, err = replay(journal)
        if m0 is None:
            print("MISMATCH %s: journal %s: %s" % (root, journal, err))
            bad += 1
            continue
        if err:
            print("MISMATCH %s: %s" % (root, err))
            bad += 1
        if not os.path.isdir(root):
            print("MISMATCH %s: expected the directory; actual: missing" % root)
            bad += 1
            continue
        a = actual(root)
        states = [m0] + alts
        res = journal + ".res"
        if final:
            try:
                with open(res) as f:
                    want = int(f.read())
            except FileNotFoundError:
                print("MISMATCH %s: no state recorded (its round failed)" % root)
                bad += 1
                continue
            d = diff(states[want], a)
            for x in d:
                print("MISMATCH %s (state %d): %s" % (root, want, x))
            bad += 1 if d else 0
            continue
        diffs = []
        for state, ms in enumerate(states):
            diffs.append(diff(ms, a))
            if not diffs[-1]:
                break
        if diffs[-1]:
            bad += 1
            for x in diffs[0]:
                print("MISMATCH %s: %s" % (root, x))
            if len(diffs) > 1:
                print("MISMATCH %s: nor with the in-flight operation applied (%s):" % (
                    root, open(journal).read().split("\n")[-3]))
                for x in diffs[1]:
                    print("MISMATCH %s (in-flight applied): %s" % (root, x))
            continue
        with open(res, "w") as f:
            f.write("%d\n" % state)
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "load":
        secs = float(argv[6]) if len(argv) > 6 else 60.0
        return load(argv[2], argv[3], int(argv[4]), int(argv[5]), secs)
    if len(argv) == 7 and argv[1] == "fill":
        return fill(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]))
    if len(argv) == 6 and argv[1] == "checkfill":
        return checkfill(argv[2], argv[3], int(argv[4]), int(argv[5]))
    if len(argv) >= 2 and argv[1] == "verify":
        a = argv[2:]
        final = bool(a) and a[0] == "--final"
        if final:
            a = a[1:]
        if not a or len(a) % 2:
            print("verify needs ROOT JOURNAL pairs", file=sys.stderr)
            return 2
        return verify(final, list(zip(a[0::2], a[1::2])))
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
