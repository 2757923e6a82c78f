#!/usr/bin/env python
"""Run every command and Python block of README.md and docs/*.md as written.

    python tools/check_docs.py --short         # what the test suite runs (tests/test_docs.py)
    python tools/check_docs.py                 # every command, on 256 examples, 2 epochs
    python tools/check_docs.py --list          # the cases, and what is not run here and why
    python tools/check_docs.py --case README.md:3 --keep /tmp/docs-check

What is a case: each ```bash block (its commands run in order in one shell, so a
variable or a run folder made by one command is there for the next), each
``python scripts/...`` command quoted in the prose, and each ```python block. The cases
of one document share one scratch folder and run in the document's order. The scratch
folder holds a copy of the repo's package, scripts/, tools/, docs/ and requirements, and
what a reader of the docs has at hand (see ``make_fixtures``): ``photos/`` (an image
folder, train/<class>/ and val/<class>/), ``new-photos/``, ``shirt.png``, ``boots.jpg``,
``img.png``, ``runs/fashion`` (a trained run), ``~/data/cifar10`` (CIFAR-10 batch files;
HOME is the scratch folder's ``home/``).

Commands run as written; only the data is smaller: every case runs with
``GLUON_CNNS_QUICK=EXAMPLES,EPOCHS`` (``gluon_cnns/data/quick.py``, docs/TRAINING.md):
the built-in data sets keep EXAMPLES examples per split, a training loop trains at most
EPOCHS epochs, and scripts/benchmark.py takes one short sample per figure. The short
mode (``--short``) uses fewer examples and leaves the commands in ``SLOW`` to the full
mode, saying so. The documents run side by side, two at a time, each in its own folder.

A command with placeholders in capitals (``--net NAME``, ``--seed S``) runs as
``FILLED`` fills them in, as the sentence around it says (these tables live in
tools/doc_cases.py). A command that cannot run here is in ``NOT_RUN`` with the reason
(listed by ``--list`` and in every report); an entry that no document holds any more is
an error, so no list can go stale. A command
whose output the docs describe is in ``EXPECT``: each pattern is quoted from the docs
(it must still be there) and the command's output must match it, ``N`` standing for a
number and ``...`` for any value. A document in ``NOT_RUN_DOCS`` (the generated flag
reference) is read for its text but none of it is run; ``--list`` names it.

Exit code 0 when every case passed, 1 otherwise, 2 for a usage error.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/check_docs.py` from a clone
    sys.path.insert(0, ROOT)
COPIED = ("gluon_cnns", "scripts", "tools", "docs", "requirements.txt", "setup.py")
# Left out of the copy: the published results. A quick-mode run stops before its recipe's
# last epoch, and scripts/reproduce.py rightly refuses to replace a finished row with it.
LEFT_OUT = ("results.json", "results")

from tools.doc_cases import (  # noqa: E402  (needs the path above)
    AS_FILE, FILLED, NOT_RUN, NOT_RUN_DOCS, SLOW, Case, all_cases, check_filled, doc_paths,
    expected_patterns, fill_placeholders, stale_entries)

# (examples per split, epochs) of GLUON_CNNS_QUICK in each mode.
QUICK = {"short": "32,1", "full": "256,2"}
CASE_TIMEOUT = 900  # seconds; a case that takes longer fails
WORKERS = 2  # documents run at once

def make_fixtures(folder, quick):
    """The repo's files and what a reader has at hand, in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    for name in COPIED:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(folder, name),
                            ignore=shutil.ignore_patterns("__pycache__", *LEFT_OUT))
        else:
            shutil.copy(src, folder)
    env = case_env(folder, quick)
    script = _FIXTURES
    subprocess.run([sys.executable, "-c", script], env=env, cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "scripts/train.py", "--net", "lenet_bn", "--quiet",
                    "--seed", "0", "--save-dir", "runs/fashion"], env=env, cwd=folder,
                   check=True, stdout=subprocess.DEVNULL)


# Runs in the scratch folder: image files from Fashion-MNIST's test set, CIFAR-10 batches.
_FIXTURES = r'''
import os, pickle
import numpy as np
from PIL import Image
from gluon_cnns.data import find_data, read_idx
files = find_data("fashion-mnist")
images = read_idx(files["t10k-images-idx3-ubyte"])
labels = read_idx(files["t10k-labels-idx1-ubyte"])
classes = {0: "T-shirt", 8: "Bag", 9: "Ankle-boot"}
for split, start, count in (("train", 0, 8), ("val", 100, 3)):
    for label, name in classes.items():
        folder = os.path.join("photos", split, name)
        os.makedirs(folder)
        for n, i in enumerate(np.flatnonzero(labels == label)[start:start + count]):
            ext = ".png" if n % 2 == 0 else ".jpg"
            Image.fromarray(images[i]).save(os.path.join(folder, "%05d%s" % (i, ext)))
os.makedirs("new-photos")
for n in range(3):
    Image.fromarray(images[200 + n]).save("new-photos/%d.png" % n)
Image.fromarray(images[np.flatnonzero(labels == 6)[0]]).save("shirt.png")
Image.fromarray(images[np.flatnonzero(labels == 9)[0]]).convert("RGB").save("boots.jpg")
Image.fromarray(images[0]).save("img.png")
cifar = os.path.join(os.environ["HOME"], "data", "cifar10", "cifar-10-batches-py")
os.makedirs(cifar)
rng = np.random.RandomState(0)
for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
    with open(os.path.join(cifar, name), "wb") as f:
        pickle.dump({b"data": rng.randint(0, 256, (20, 3072)).astype(np.uint8),
                     b"labels": rng.randint(0, 10, 20).tolist()}, f, protocol=2)
'''


def case_env(folder, quick):
    """The environment of every case: the scratch folder's package first, HOME inside it,
    the quick mode's caps, and no thread variable (each command picks its threads as it
    does in a fresh shell, so `training on cpu(0), 1 thread` is the package's choice)."""
    from gluon_cnns.threads import USER_THREAD_VARS, USER_WAIT_VARS
    env = {k: v for k, v in os.environ.items() if k not in USER_THREAD_VARS + USER_WAIT_VARS}
    env.update(PYTHONPATH=folder + os.pathsep + env.get("PYTHONPATH", ""),
               HOME=os.path.join(folder, "home"), GLUON_CNNS_QUICK=quick,
               MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    os.makedirs(env["HOME"], exist_ok=True)
    return env


# ---------------------------------------------------------------- running

@dataclass
class Result:
    case: Case
    ok: bool
    lines: list   # the report: what ran, what was not run and why, what failed
    seconds: float


def run_case(case, folder, quick, doc_text):
    """Run ``case`` in ``folder`` (already holding the fixtures); return a Result."""
    began = time.time()
    if case.kind == "python":
        return _run_python(case, folder, quick, began)
    script, plan, lines = ["cd %s" % _quote(folder)], [], []
    for n, command in enumerate(case.commands):
        reason = NOT_RUN.get(command)
        if reason:
            lines.append("not run: %s  (%s)" % (command, reason))
            continue
        out_file = os.path.join(folder, ".out-%d-%d" % (case.index, n))
        plan.append((command, fill_placeholders(command), out_file))
        # Braces, not a subshell: a variable or `export` stays for the next command.
        script.append("{\n%s\n} > %s 2>&1 || { echo \"%s$?\" >> %s; exit 1; }"
                      % (plan[-1][1], _quote(out_file), FAILED, _quote(out_file)))
    ok, out = _run(["bash", "-c", "\n".join(script)], folder, quick) if plan else (True, "")
    for command, filled, out_file in plan:
        if not os.path.exists(out_file):
            break  # an earlier command failed
        text = open(out_file, errors="replace").read()
        shown = command if filled == command else "%s  (as: %s)" % (command, filled)
        missing = [q for q, regex in expected_patterns(command, doc_text)
                   if not re.search(regex, text, re.M)]
        if FAILED in text:
            lines.append("%s: failed, %s\n%s" % (shown, text[text.index(FAILED) + 1:].strip(),
                                                 _tail(text[:text.index(FAILED)])))
        elif missing:
            ok = False
            lines.append("%s: ran, but its output does not show %s\n%s"
                         % (shown, "; ".join(repr(m) for m in missing), _tail(text)))
        else:
            lines.append("ran: %s" % shown)
    if not ok and not plan[-1:] and out.strip():
        lines.append(_tail(out))
    return Result(case, ok, lines, time.time() - began)


FAILED = "\n@@check_docs: exit "


def _run_python(case, folder, quick, began):
    """A Python block: run as a script, or written to the file the docs run it as."""
    for marker, (name, why) in AS_FILE.items():
        if marker in case.text:
            with open(os.path.join(folder, name), "w") as f:
                f.write(case.text)
            return Result(case, True, ["written to %s, not run alone: %s" % (name, why)], 0.0)
    path = os.path.join(folder, ".case-%d.py" % case.index)
    with open(path, "w") as f:
        f.write(case.text)
    ok, out = _run([sys.executable, path], folder, quick)
    lines = ["ran the block"] if ok else ["the block failed:\n%s" % _tail(out, 25)]
    return Result(case, ok, lines, time.time() - began)


def _run(argv, folder, quick):
    env = case_env(folder, quick)
    try:
        proc = subprocess.run(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=CASE_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        return False, "timed out after %d s\n%s" % (CASE_TIMEOUT, (e.output or b"").decode())
    return proc.returncode == 0, proc.stdout.decode(errors="replace")


def _tail(text, lines=15):
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


def _quote(path):
    return "'" + path.replace("'", "'\\''") + "'"


class Checker:
    """Runs cases, each document's in its own scratch folder and in order (a case run
    alone first runs the cases before it in its document). ``start`` runs documents in
    the background, ``workers`` at a time; ``run`` then waits for a case's result."""

    def __init__(self, mode="short", scratch=None, workers=WORKERS):
        self.mode, self.quick = mode, QUICK[mode]
        self.scratch = scratch  # made when the first case runs
        self.cases = all_cases()
        check_filled()
        for case in self.cases:
            for command in case.commands:
                fill_placeholders(command)
        stale = stale_entries(self.cases)
        if stale:
            raise ValueError("tools/check_docs.py lists commands no document holds any "
                             "more: %s" % "; ".join(stale))
        self.doc_text = "\n".join(open(os.path.join(ROOT, d), encoding="utf-8").read()
                                  for d in doc_paths())
        self.done = {}     # case id -> Result
        self.folders = {}  # doc -> its scratch folder
        self.locks = {doc: threading.RLock() for doc in doc_paths()}
        self.fixture_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(workers)
        self.stopping = False
        self.futures = {}  # doc -> the background run of its cases
        self.local = threading.local()

    def folder(self, doc):
        """The document's scratch folder: a copy of the fixtures, made once."""
        with self.fixture_lock:
            if self.scratch is None:
                self.scratch = tempfile.mkdtemp(prefix="check-docs-")
            template = os.path.join(self.scratch, "fixtures")
            if not os.path.isdir(template):
                make_fixtures(template, self.quick)
        if doc not in self.folders:
            folder = os.path.join(self.scratch, doc.replace("/", "_").replace(".md", ""))
            shutil.copytree(template, folder, symlinks=True)
            self.folders[doc] = folder
        return self.folders[doc]

    def start(self, cases):
        """Run ``cases`` (and those before them in their documents) in the background."""
        last = {}
        for case in cases:
            last[case.doc] = max(case, last.get(case.doc, case), key=lambda c: c.index)
        for case in sorted(last.values(), key=lambda c: -c.index):  # the longest first
            self.futures[case.doc] = self.pool.submit(self._background, case)

    def _background(self, case):
        self.local.worker = True
        return self.run(case)

    def run(self, case):
        future = self.futures.get(case.doc)
        if future is not None and not getattr(self.local, "worker", False):
            future.result()  # its document is (or will be) run by a worker: wait for it
        with self.locks[case.doc]:
            for before in self.cases:
                if before.doc == case.doc and before.index < case.index \
                        and before.id not in self.done:
                    self.run(before)
            if case.id not in self.done:
                self.done[case.id] = self._run(case)
            return self.done[case.id]

    def _run(self, case):
        if self.stopping:
            return Result(case, False, ["not run: the check was stopped"], 0.0)
        slow = [c for c in case.commands if c in SLOW]
        if self.mode == "short" and slow:
            return Result(case, True, ["full mode only: %s  (%s)" % (c, SLOW[c]) for c in slow]
                          + ["not run in the short mode: %s" % c for c in case.commands
                             if c not in SLOW], 0.0)
        try:
            return run_case(case, self.folder(case.doc), self.quick, self.doc_text)
        except Exception as e:  # a broken fixture or scratch folder fails the case, not the run
            return Result(case, False, ["could not run: %r" % e], 0.0)

    def cleanup(self):
        """Stop starting cases, wait for those running, remove the scratch folders."""
        self.stopping = True
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def describe(case):
    """One line: the case's id, kind, line and what it holds."""
    first = case.commands[0] if case.commands else case.text.strip().splitlines()[0]
    more = " (+%d more)" % (len(case.commands) - 1) if len(case.commands) > 1 else ""
    return "%-24s %-6s line %-4d %s%s" % (case.id, case.kind, case.line, first[:90], more)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="check_docs", description="Run every command and Python block of README.md "
        "and docs/*.md as written, on a little data (GLUON_CNNS_QUICK).")
    parser.add_argument("--short", action="store_true",
                        help="the test suite's mode: %s examples per split, at most %s "
                        "epoch(s) (default: %s and %s)" % (tuple(QUICK["short"].split(","))
                                                          + tuple(QUICK["full"].split(","))))
    parser.add_argument("--list", action="store_true",
                        help="list the cases and the commands not run here, and exit")
    parser.add_argument("--case", action="append", metavar="ID",
                        help="run only this case (e.g. README.md:3; repeatable)")
    parser.add_argument("--keep", metavar="DIR",
                        help="make the scratch folders in DIR (new) and keep them")
    args = parser.parse_args(argv)
    if args.keep and os.path.exists(args.keep):
        parser.error("--keep %s exists; name a new folder" % args.keep)
    try:
        checker = Checker("short" if args.short else "full", args.keep)
    except ValueError as e:
        print("check_docs: error: %s" % e, file=sys.stderr)
        return 2
    if args.list:
        for doc, why in NOT_RUN_DOCS.items():
            print("%-24s not run: %s" % (doc, why))
        for case in checker.cases:
            print(describe(case))
            for command in case.commands:
                if command in NOT_RUN:
                    print("    not run: %s  (%s)" % (command, NOT_RUN[command]))
            for command in case.commands:
                if command in FILLED:
                    print("    runs as: %s" % FILLED[command])
                if command in SLOW:
                    print("    full mode only: %s  (%s)" % (command, SLOW[command]))
            for marker, (name, why) in AS_FILE.items():
                if case.kind == "python" and marker in case.text:
                    print("    written to %s, not run alone: %s" % (name, why))
        return 0
    chosen = [c for c in checker.cases if not args.case or c.id in args.case]
    if args.case and len(chosen) != len(set(args.case)):
        known = {c.id for c in checker.cases}
        parser.error("no case %s; see --list" % ", ".join(sorted(set(args.case) - known)))
    failed = 0
    try:
        checker.start(chosen)
        for case in chosen:
            result = checker.run(case)
            failed += not result.ok
            print("%s %s (%.0f s)" % ("ok  " if result.ok else "FAIL", describe(case),
                                      result.seconds), flush=True)
            for line in result.lines:
                print("    " + line.replace("\n", "\n    "))
    finally:
        if not args.keep:
            checker.cleanup()
    print("%d of %d cases passed" % (len(chosen) - failed, len(chosen)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
