#!/usr/bin/env python3
"""tools/soak_load.py — the load, the sampler and the report of the soak benchmark
(tools/soak.sh runs all three; see there for the criteria).

  soak_load.py run ROOT OUT.json [--writers N] [--readers N] [--duration S] [--live-mib N]
                                 [--seed N]
      Mixed load in the existing directory ROOT for S seconds (default 600): N writer processes
      (default 3), each in its own subtree ROOT/wI/d0..d7, create files of mixed sizes (1 byte
      to 4 MiB, log-uniform), append, overwrite ranges in place, truncate (shrink, and O_TRUNC
      rewrites), rename within their subtree (to a new name or over an existing file), replace
      files atomically (write a temporary, fsync, rename over), unlink, and fsync/fdatasync;
      N reader processes (default 2) walk ROOT (os.walk + lstat of every entry, every 10th
      pass `ls -lR`), and read whole files (cat) and stat them.  The live data set is held
      near --live-mib MiB (default 256) in total: a writer below its share (live / writers)
      mostly creates and appends, one above it mostly shrinks, truncates and unlinks, one in
      between does everything.  Writers fill their share first (the ramp-up).
      A writer knows its files and their sizes (nothing else touches its subtree), so every
      call is valid and any error is counted; readers tolerate ENOENT (a writer removed the
      name meanwhile) and count every other error.  At the end OUT.json holds operations per
      kind, bytes written and read, errors (with the first few messages), and ops/s.
      Exit 0, or 1 when any error was counted.

  soak_load.py sample PID ERRLOG STORE OUT.tsv INTERVAL LOADPID
      Every INTERVAL seconds until LOADPID has exited: the daemon PID's VmRSS, RssAnon and
      RssFile (/proc/PID/status), its open descriptors (/proc/PID/fd), the allocated size
      (st_blocks * 512) and length of STORE and STORE-wal, and the daemon's statistics: it
      sends SIGUSR1 and waits (5 s at most) for the next "kvfs: stats:" line in ERRLOG (the
      daemon's standard error; kvfs(1) "Statistics").  One line of OUT.tsv per sample.

  soak_load.py report OUT.tsv LOAD.json LIVE_MIB [BASELINE.json]
      The table over time and a verdict per criterion (tools/soak.sh); exit 1 if one fails.
"""
import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

MiB = 1 << 20
RANDBUF = os.urandom(8 * MiB)  # contents: slices of this (kvfs does not compress or dedupe)


def payload(rng, n):
    off = rng.randrange(0, len(RANDBUF) - n + 1) if n < len(RANDBUF) else 0
    return memoryview(RANDBUF)[off:off + n]


def file_size(rng):
    """1 B .. 4 MiB, log-uniform: most files small, most bytes in the large ones."""
    return max(1, int(2 ** rng.uniform(0, 22)))


class Counts:
    def __init__(self, role):
        self.role = role
        self.ops = {}
        self.written = 0
        self.read = 0
        self.errors = 0
        self.messages = []

    def op(self, kind):
        self.ops[kind] = self.ops.get(kind, 0) + 1

    def error(self, what, e):
        self.errors += 1
        if len(self.messages) < 10:
            self.messages.append("%s: %s" % (what, e))

    def dump(self, path):
        with open(path, "w") as f:
            json.dump({"role": self.role, "ops": self.ops, "written": self.written,
                       "read": self.read, "errors": self.errors,
                       "messages": self.messages}, f)


# ---------------------------------------------------------------- writers

class Writer:
    def __init__(self, root, idx, share, seed, c):
        self.root = os.path.join(root, "w%d" % idx)
        self.share = share
        self.rng = random.Random(seed * 7919 + idx)
        self.c = c
        self.files = {}  # relative path -> size
        self.total = 0
        self.seq = 0
        self.dirs = ["d%d" % i for i in range(8)]
        os.makedirs(self.root, exist_ok=True)
        for d in self.dirs:
            os.makedirs(os.path.join(self.root, d), exist_ok=True)

    def P(self, rel):
        return os.path.join(self.root, rel)

    def new_name(self):
        self.seq += 1
        return os.path.join(self.rng.choice(self.dirs), "f%07d" % self.seq)

    def set_size(self, rel, n):
        self.total += n - self.files.get(rel, 0)
        self.files[rel] = n

    def drop(self, rel):
        self.total -= self.files.pop(rel)

    def write_all(self, fd, n, off=0):
        left = n
        while left > 0:
            k = min(left, self.rng.choice((4096, 65536, 262144, MiB)))
            os.pwrite(fd, payload(self.rng, k), off)
            off += k
            left -= k
        self.c.written += n

    def sync(self, fd):
        if self.rng.random() < 0.5:
            os.fsync(fd)
        else:
            os.fdatasync(fd)
        self.c.op("fsync")

    def create(self, rel=None, n=None):
        rel = rel or self.new_name()
        n = file_size(self.rng) if n is None else n
        fd = os.open(self.P(rel), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            self.write_all(fd, n)
            if self.rng.random() < 0.3:
                self.sync(fd)
        finally:
            os.close(fd)
        self.set_size(rel, n)
        self.c.op("create")

    def pick(self):
        return self.rng.choice(list(self.files))

    def append(self):
        rel = self.pick()
        n = max(1, int(2 ** self.rng.uniform(0, 18)))
        fd = os.open(self.P(rel), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, payload(self.rng, n))
            self.c.written += n
            if self.rng.random() < 0.2:
                self.sync(fd)
        finally:
            os.close(fd)
        self.set_size(rel, self.files[rel] + n)
        self.c.op("append")

    def overwrite(self):
        rel = self.pick()
        size = self.files[rel]
        if size == 0:
            return self.append()
        off = self.rng.randrange(0, size)
        n = min(size - off, max(1, int(2 ** self.rng.uniform(0, 20))))
        fd = os.open(self.P(rel), os.O_WRONLY)
        try:
            self.write_all(fd, n, off)
            if self.rng.random() < 0.2:
                self.sync(fd)
        finally:
            os.close(fd)
        self.c.op("overwrite")

    def shrink(self):
        rel = self.pick()
        n = self.rng.randrange(0, self.files[rel] + 1)
        os.truncate(self.P(rel), n)
        self.set_size(rel, n)
        self.c.op("truncate")

    def rewrite(self):
        """open(O_TRUNC) and write new contents: a put over an existing key"""
        rel = self.pick()
        n = file_size(self.rng)
        fd = os.open(self.P(rel), os.O_WRONLY | os.O_TRUNC)
        try:
            self.write_all(fd, n)
        finally:
            os.close(fd)
        self.set_size(rel, n)
        self.c.op("rewrite")

    def rename(self):
        src = self.pick()
        if len(self.files) > 1 and self.rng.random() < 0.3:
            dst = self.rng.choice([f for f in self.files if f != src])
            self.drop(dst)
        else:
            dst = self.new_name()
        os.rename(self.P(src), self.P(dst))
        self.files[dst] = self.files.pop(src)
        self.c.op("rename")

    def replace(self):
        """write a temporary, fsync it, rename it over an existing file (atomic replace)"""
        dst = self.pick()
        tmp = self.new_name() + ".tmp"
        self.create(tmp, file_size(self.rng))
        fd = os.open(self.P(tmp), os.O_RDONLY)
        try:
            self.sync(fd)
        finally:
            os.close(fd)
        os.rename(self.P(tmp), self.P(dst))
        self.drop(dst)
        self.files[dst] = self.files.pop(tmp)
        self.c.op("replace")

    def unlink(self):
        rel = self.pick()
        os.unlink(self.P(rel))
        self.drop(rel)
        self.c.op("unlink")

    def fsync_one(self):
        fd = os.open(self.P(self.pick()), os.O_RDONLY)
        try:
            self.sync(fd)
        finally:
            os.close(fd)

    def step(self):
        if not self.files:
            return self.create()
        lo, hi = 0.9 * self.share, 1.1 * self.share
        if self.total < lo:      # grow (the ramp-up, or after a burst of deletes)
            ops = ((self.create, 6), (self.append, 3), (self.overwrite, 1), (self.rename, 1))
        elif self.total > hi:    # shrink
            ops = ((self.unlink, 4), (self.shrink, 2), (self.overwrite, 1), (self.rename, 1),
                   (self.fsync_one, 1))
        else:                    # steady: everything
            ops = ((self.create, 3), (self.append, 3), (self.overwrite, 4), (self.shrink, 2),
                   (self.rewrite, 2), (self.rename, 2), (self.replace, 1), (self.unlink, 3),
                   (self.fsync_one, 2))
        f = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        f()


def writer_main(root, idx, share, seed, deadline, out):
    c = Counts("writer")
    w = Writer(root, idx, share, seed, c)
    while time.monotonic() < deadline:
        try:
            w.step()
        except OSError as e:
            c.error("writer %d" % idx, e)
            # resynchronise the model with what is there (the call may have half happened)
            w.files = {}
            w.total = 0
            for d in w.dirs:
                for n in os.listdir(w.P(d)):
                    w.files[os.path.join(d, n)] = os.stat(w.P(os.path.join(d, n))).st_size
                    w.total += w.files[os.path.join(d, n)]
            if c.errors > 100:
                break
    c.dump(out)


# ---------------------------------------------------------------- readers

def reader_main(root, idx, seed, deadline, out):
    c = Counts("reader")
    rng = random.Random(seed * 104729 + idx)
    npass = 0
    while time.monotonic() < deadline:
        npass += 1
        if npass % 10 == 0:
            r = subprocess.run(["ls", "-lR", root], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            # ls reports names removed between its readdir and its lstat: not errors
            bad = [ln for ln in r.stderr.decode(errors="replace").splitlines()
                   if "No such file or directory" not in ln]
            if bad:
                c.error("ls -lR", bad[0])
            c.op("ls-R")
            continue
        files = []
        for d, dn, fn in os.walk(root):
            for n in dn + fn:
                try:
                    st = os.lstat(os.path.join(d, n))
                    c.op("stat")
                    if stat.S_ISREG(st.st_mode):
                        files.append(os.path.join(d, n))
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        c.error("lstat", e)
            if time.monotonic() >= deadline:
                break
        c.op("walk")
        for p in rng.sample(files, min(len(files), 20)):
            if time.monotonic() >= deadline:
                break
            try:
                with open(p, "rb") as f:
                    while True:
                        b = f.read(MiB)
                        if not b:
                            break
                        c.read += len(b)
                c.op("cat")
            except OSError as e:
                if e.errno != errno.ENOENT:
                    c.error("cat", e)
    c.dump(out)


def run(args):
    root, out = args[0], args[1]
    opt = {"--writers": 3, "--readers": 2, "--duration": 600.0, "--live-mib": 256.0,
           "--seed": 1}
    a = args[2:]
    while a:
        if a[0] not in opt or len(a) < 2:
            print("soak_load.py run: bad option %s" % a[0], file=sys.stderr)
            return 2
        opt[a[0]] = type(opt[a[0]])(a[1])
        a = a[2:]
    nw, nr = opt["--writers"], opt["--readers"]
    share = opt["--live-mib"] * MiB / nw
    t0 = time.monotonic()
    deadline = t0 + opt["--duration"]
    kids = []
    for i in range(nw + nr):
        part = "%s.%d" % (out, i)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if i < nw:
                    writer_main(root, i, share, opt["--seed"], deadline, part)
                else:
                    reader_main(root, i - nw, opt["--seed"], deadline, part)
            except BaseException as e:  # a worker that dies still leaves its counts
                c = Counts("crashed")
                c.error("worker %d died" % i, repr(e))
                c.dump(part)
                print("soak_load.py: worker %d: %r" % (i, e), file=sys.stderr)
                code = 1
            os._exit(code)
        kids.append((pid, part))
    total = {"seconds": 0.0, "ops": {}, "written": 0, "read": 0, "errors": 0, "messages": [],
             "writers": nw, "readers": nr}
    bad = 0
    for pid, part in kids:
        _, st = os.waitpid(pid, 0)
        bad |= st != 0
        try:
            with open(part) as f:
                r = json.load(f)
            os.unlink(part)
        except (OSError, ValueError) as e:
            r = {"ops": {}, "written": 0, "read": 0, "errors": 1,
                 "messages": ["no counts from worker %d: %s" % (pid, e)]}
        for k, v in r["ops"].items():
            total["ops"][k] = total["ops"].get(k, 0) + v
        for k in ("written", "read", "errors"):
            total[k] += r[k]
        total["messages"] += r["messages"]
    total["seconds"] = time.monotonic() - t0
    changes = sum(v for k, v in total["ops"].items()
                  if k not in ("stat", "walk", "cat", "ls-R", "fsync"))
    total["change_ops_per_s"] = changes / total["seconds"]
    total["fsyncs_per_s"] = total["ops"].get("fsync", 0) / total["seconds"]
    total["written_mib_per_s"] = total["written"] / MiB / total["seconds"]
    total["read_mib_per_s"] = total["read"] / MiB / total["seconds"]
    total["stats_per_s"] = total["ops"].get("stat", 0) / total["seconds"]
    with open(out, "w") as f:
        json.dump(total, f, indent=1)
    return 1 if bad or total["errors"] else 0


# ---------------------------------------------------------------- sampler

COLS = ["t_s", "rss_kib", "rss_anon_kib", "rss_file_kib", "fds", "data_alloc", "data_len",
        "wal_alloc", "wal_len", "files", "dirs", "bytes", "pages_used", "pages_free",
        "pages_pinned", "log_bytes", "checkpoints", "fdatasync", "syncs"]


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def stats_line(pid, errlog, pos):
    """Send SIGUSR1, return (dict, new position) from the next stats line after pos."""
    os.kill(pid, signal.SIGUSR1)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        with open(errlog, "rb") as f:
            f.seek(pos)
            data = f.read()
        i = data.find(b"kvfs: stats: ")
        if i >= 0:
            j = data.find(b"\n", i)
            if j >= 0:
                kv = dict(w.split("=", 1) for w in data[i + 13:j].decode().split())
                return {k: int(v) for k, v in kv.items()}, pos + j + 1
        time.sleep(0.02)
    return None, pos


def sample(args):
    pid, errlog, store, out, interval, loadpid = (int(args[0]), args[1], args[2], args[3],
                                                  float(args[4]), int(args[5]))
    t0 = time.monotonic()
    pos = 0
    missed = 0
    with open(out, "w") as f:
        f.write("\t".join(COLS) + "\n")
        while True:
            t = time.monotonic() - t0
            ps = proc_status(pid)
            fds = len(os.listdir("/proc/%d/fd" % pid))
            sd, sw = os.stat(store), os.stat(store + "-wal")
            s, pos = stats_line(pid, errlog, pos)
            if s is None:
                missed += 1
                s = {}
            row = [round(t, 1), ps["VmRSS"], ps["RssAnon"], ps["RssFile"], fds,
                   sd.st_blocks * 512, sd.st_size, sw.st_blocks * 512, sw.st_size]
            row += [s.get(k, -1) for k in COLS[9:]]
            f.write("\t".join(str(x) for x in row) + "\n")
            f.flush()
            try:  # the load's exit ends the sampling (reaped by soak.sh, so poll /proc)
                with open("/proc/%d/stat" % loadpid) as st:
                    if st.read().split(") ")[1][0] == "Z":
                        break
            except FileNotFoundError:
                break
            wait = interval - (time.monotonic() - t0 - t)
            if wait > 0:
                time.sleep(wait)
    if missed:
        print("soak_load.py sample: %d samples without a stats line" % missed, file=sys.stderr)
    return 0


# ---------------------------------------------------------------- report

def mib(x):
    return "%.1f" % (x / MiB)


def report(args):
    tsv, loadjson, live_mib = args[0], args[1], float(args[2])
    base = args[3] if len(args) > 3 else None
    rows = []
    with open(tsv) as f:
        head = f.readline().split()
        for ln in f:
            rows.append(dict(zip(head, (float(x) for x in ln.split()))))
    with open(loadjson) as f:
        load = json.load(f)
    verdicts = []

    def verdict(name, ok, detail):
        verdicts.append((name, ok, detail))

    if len(rows) < 6:
        print("soak: only %d samples: too few to judge" % len(rows))
        return 1
    # the table: at most ~40 rows, evenly spaced, always the first and the last
    step = max(1, len(rows) // 40)
    shown = rows[::step]
    if shown[-1] is not rows[-1]:
        shown.append(rows[-1])
    print("%7s %8s %8s %8s %4s %9s %9s %9s %9s %6s %9s %6s %6s %7s %7s" % (
        "t(s)", "RSS MiB", "anon", "file", "fds", "live MiB", "data MiB", "wal MiB",
        "used MiB", "free", "logB MiB", "ckpts", "files", "data/lv", "tot/lv"))
    for r in shown:
        lv = r["bytes"]
        print("%7.0f %8s %8s %8s %4d %9s %9s %9s %9s %6d %9s %6d %6d %7s %7s" % (
            r["t_s"], mib(r["rss_kib"] * 1024), mib(r["rss_anon_kib"] * 1024),
            mib(r["rss_file_kib"] * 1024), r["fds"], mib(lv), mib(r["data_alloc"]),
            mib(r["wal_alloc"]), mib(r["pages_used"] * 4096), r["pages_free"],
            mib(r["log_bytes"]), r["checkpoints"], r["files"],
            "%.2f" % (r["data_alloc"] / lv) if lv > 0 else "-",
            "%.2f" % ((r["data_alloc"] + r["wal_alloc"]) / lv) if lv > 0 else "-"))
    print("(live = sum of file sizes, from the daemon's statistics; data, wal = allocated bytes "
          "of STORE, STORE-wal; used = pages in use x 4096; free = free pages; logB = log "
          "bytes not yet released; RSS, anon, file = VmRSS, RssAnon, RssFile)")

    missing = [r for r in rows if r["bytes"] < 0]
    verdict("statistics on SIGUSR1", not missing,
            "%d of %d samples without a stats line" % (len(missing), len(rows)))
    rows = [r for r in rows if r["bytes"] >= 0] or rows
    # ramp-up: the first sample with live >= 90 % of the target
    target = live_mib * MiB
    ramp = next((i for i, r in enumerate(rows) if r["bytes"] >= 0.9 * target), None)
    verdict("ramp-up reached 90% of the live target", ramp is not None,
            "at t=%s s" % (rows[ramp]["t_s"] if ramp is not None else "never"))
    if ramp is None:
        ramp = 0
    after = rows[ramp:]
    n = len(rows)
    first, last = rows[:max(1, n // 3)], rows[n - max(1, n // 3):]
    m1 = max(r["rss_kib"] for r in first) * 1024
    m3 = max(r["rss_kib"] for r in last) * 1024
    a1 = max(r["rss_anon_kib"] for r in first) * 1024
    a3 = max(r["rss_anon_kib"] for r in last) * 1024
    lim = m1 * 1.2 + 8 * MiB
    verdict("RSS flat", m3 <= lim,
            "max VmRSS last third %s MiB <= first third %s MiB x 1.2 + 8 MiB = %s MiB "
            "(RssAnon: %s -> %s MiB)" % (mib(m3), mib(m1), mib(lim), mib(a1), mib(a3)))
    f0, f1 = after[0]["fds"], rows[-1]["fds"]
    verdict("descriptors flat", abs(f1 - f0) <= 2,
            "%d after ramp-up, %d at the end (range %d..%d after ramp-up; allowed +-2)" % (
                f0, f1, min(r["fds"] for r in after), max(r["fds"] for r in after)))
    ck0, ck1 = rows[0]["checkpoints"], rows[-1]["checkpoints"]
    drops = sum(1 for a, b in zip(rows, rows[1:]) if b["log_bytes"] < a["log_bytes"])
    wal = {r["wal_alloc"] for r in rows}
    verdict("log recycled", ck1 > ck0 and drops > 0 and len(wal) == 1,
            "%d checkpoints during the run; log bytes went down %d times; log file %s" % (
                ck1 - ck0, drops, "constant at %s MiB" % mib(min(wal)) if len(wal) == 1 else
                "between %d and %d bytes" % (min(wal), max(wal))))
    worst = max(after, key=lambda r: r["data_alloc"] / max(r["bytes"], 1))
    verdict("data file <= live x 1.5 after ramp-up",
            all(r["data_alloc"] <= 1.5 * r["bytes"] for r in after),
            "worst %.2f at t=%.0f s (data %s MiB, live %s MiB, pages used %s MiB, free %s MiB)"
            % (worst["data_alloc"] / max(worst["bytes"], 1), worst["t_s"],
               mib(worst["data_alloc"]), mib(worst["bytes"]), mib(worst["pages_used"] * 4096),
               mib(worst["pages_free"] * 4096)))
    worst = max(after, key=lambda r: (r["data_alloc"] + r["wal_alloc"]) / max(r["bytes"], 1))
    verdict("store (data + log) <= live x 1.5 after ramp-up",
            all(r["data_alloc"] + r["wal_alloc"] <= 1.5 * r["bytes"] for r in after),
            "worst %.2f at t=%.0f s (data %s + log %s MiB, live %s MiB)" % (
                (worst["data_alloc"] + worst["wal_alloc"]) / max(worst["bytes"], 1),
                worst["t_s"], mib(worst["data_alloc"]), mib(worst["wal_alloc"]),
                mib(worst["bytes"])))
    verdict("no errors in the load", load["errors"] == 0,
            "%d errors%s" % (load["errors"], (": " + "; ".join(load["messages"][:3]))
                             if load["errors"] else ""))

    print()
    print("load: %.0f s, %d writers, %d readers: %.1f changes/s, %.1f fsyncs/s, "
          "%.1f MiB/s written, %.1f MiB/s read, %.0f stats/s" % (
              load["seconds"], load["writers"], load["readers"], load["change_ops_per_s"],
              load["fsyncs_per_s"], load["written_mib_per_s"], load["read_mib_per_s"],
              load["stats_per_s"]))
    print("      " + ", ".join("%s %d" % kv for kv in sorted(load["ops"].items())))
    if base:
        with open(base) as f:
            b = json.load(f)
        print("baseline (the same load on a directory of the host file system, %.0f s): "
              "%.1f changes/s, %.1f fsyncs/s, %.1f MiB/s written, %.1f MiB/s read, "
              "%.0f stats/s" % (b["seconds"], b["change_ops_per_s"], b["fsyncs_per_s"],
                                b["written_mib_per_s"], b["read_mib_per_s"], b["stats_per_s"]))
    print()
    bad = 0
    for name, ok, detail in verdicts:
        print("%s: %s: %s" % ("PASS" if ok else "FAIL", name, detail))
        bad += not ok
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "run":
        return run(argv[2:])
    if len(argv) == 8 and argv[1] == "sample":
        return sample(argv[2:])
    if len(argv) in (5, 6) and argv[1] == "report":
        return report(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
