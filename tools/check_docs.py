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
``FILLED`` fills them in, as the sentence around it says. A command that cannot run
here is in ``NOT_RUN`` with the reason (listed by ``--list`` and in every report); an
entry that no document holds any more is an error, so no list can go stale. A command
whose output the docs describe is in ``EXPECT``: each pattern is quoted from the docs
(it must still be there) and the command's output must match it, ``N`` standing for a
number and ``...`` for any value. A document in ``NOT_RUN_DOCS`` (the generated flag
reference) is read for its text but none of it is run; ``--list`` names it.

Exit code 0 when every case passed, 1 otherwise, 2 for a usage error.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/check_docs.py` from a clone
    sys.path.insert(0, ROOT)
COPIED = ("gluon_cnns", "scripts", "tools", "docs", "requirements.txt", "setup.py")
# Left out of the copy: the published results. A quick-mode run stops before its recipe's
# last epoch, and scripts/reproduce.py rightly refuses to replace a finished row with it.
LEFT_OUT = ("results.json", "results")

# (examples per split, epochs) of GLUON_CNNS_QUICK in each mode.
QUICK = {"short": "32,1", "full": "256,2"}
CASE_TIMEOUT = 900  # seconds; a case that takes longer fails
WORKERS = 2  # documents run at once

# A command with placeholders in capitals (NAME, DIR, S) -> what a reader would run, as
# the sentence around it says. Only the placeholders may differ (checked).
FILLED = {
    "python scripts/reproduce.py --net NAME":
        "python scripts/reproduce.py --net lenet_bn",
    "python scripts/reproduce.py --net NAME --seed S --runs-dir DIR":
        "python scripts/reproduce.py --net lenet_bn --seed 1 --runs-dir runs/seeds",
    "python scripts/train.py --save-dir COPY --resume --epochs 10":
        "python scripts/train.py --save-dir runs/fashion --resume --epochs 10",
    "python scripts/train.py --net lenet_bn --lr 0.5 --seed S":
        "python scripts/train.py --net lenet_bn --lr 0.5 --seed 1",
    "python scripts/reproduce.py --net vgg11_small,alexnet --runs-dir DIR --checkpoint-every 50":
        "python scripts/reproduce.py --net vgg11_small,alexnet --runs-dir runs/seeds "
        "--checkpoint-every 50",
    "python scripts/train.py --net NAME --data-dir DIR --epochs 1 --limit-train 2560 "
    "--limit-test 500":
        "python scripts/train.py --net resnet20_cifar --data-dir ~/data/cifar10 --epochs 1 "
        "--limit-train 2560 --limit-test 500",
    "python scripts/reproduce.py --net resnet20_cifar --data-dir DIR":
        "python scripts/reproduce.py --net resnet20_cifar --data-dir ~/data/cifar10",
    "python scripts/train.py --net NAME --dtype DTYPE --seed S --quiet":
        "python scripts/train.py --net lenet_bn --dtype bf16 --seed 1 --quiet",
}
PLACEHOLDER = re.compile(r"(?<![\w$=./~-])[A-Z]+(?![\w=])")

# Exact command text (as extracted) -> why it does not run here.
NOT_RUN = {
    "pip install -r requirements.txt":
        "installs the pinned set into the running environment; CI does it in a fresh "
        "virtualenv (.ci/run), and the suite runs in an installed one",
    "bash scripts/install_horovod.sh":
        "compiles Horovod into the running environment (minutes); CI does it (.ci/run)",
    "python -m pytest":
        "the test suite itself, which runs this checker: running it here would recurse",
    "pip uninstall -y mxnet":
        "removes MXNet from the running environment",
    "pip install mxnet-cu112==1.9.1":
        "a CUDA wheel: needs a GPU and the network, and replaces the CPU MXNet",
    "HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 "
    "HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 pip install --no-build-isolation horovod==0.28.1":
        "compiles Horovod into the running environment (minutes); CI does it (.ci/run)",
    "python scripts/train.py --net resnet18 --gpus 4":
        "needs 4 GPUs (with fewer, --gpus is one error line, exit 2)",
    "python scripts/train.py --net resnet18 --gpus 8 --batch-size 2048 --lr 0.4":
        "needs 8 GPUs (with fewer, --gpus is one error line, exit 2)",
    "python scripts/launch.py -n 2 -s 2 -H hosts --host-ip 10.0.0.1 -- "
    "/opt/venv/bin/python scripts/train.py --net resnet18 --kvstore dist_sync "
    "--save-dir runs/r18":
        "two hosts at 10.0.0.1 and 10.0.0.2 reachable over passwordless ssh",
    "python scripts/launch.py -n 2 -s 2 -H hosts --host-ip 10.0.0.1 --env OMP_NUM_THREADS=8 -- "
    "/opt/venv/bin/python scripts/train.py --net resnet18 --kvstore dist_sync "
    "--save-dir runs/r18":
        "two hosts at 10.0.0.1 and 10.0.0.2 reachable over passwordless ssh",
    "horovodrun -np 4 -H 10.0.0.1:2,10.0.0.2:2 --gloo /opt/venv/bin/python "
    "scripts/train.py --model resnet18 --kvstore horovod --save-dir /shared/runs/r18":
        "two hosts at 10.0.0.1 and 10.0.0.2 reachable over passwordless ssh",
    "python scripts/benchmark.py --net none --peer lenet_bn,resnet_mnist,resnet18,googlenet,"
    "resnet20_cifar,densenet --peer-python /tmp/torch-venv/bin/python --peer-rounds 2":
        "needs PyTorch in its own virtualenv (GluonCV 0.10 refuses to import beside torch 2), "
        "which this environment does not have",
    "python3 -m venv /tmp/torch-venv":
        "makes the PyTorch virtualenv of the peer column (see the benchmark command after it)",
    "/tmp/torch-venv/bin/pip install "
    "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl":
        "a PyTorch wheel from a local folder this environment does not have",
}

# Exact command text -> why the short mode leaves it to the full mode (its cost here).
SLOW = {
    "python scripts/benchmark.py --net none --threads lenet_bn,resnet_mnist,resnet18 "
    "--threads-rounds 3":
        "the thread matrix: 30 fresh trainings (3 nets x 5 thread policies x a quiet and "
        "a busy machine), 4-5 minutes here even on a little data",
}

# Exact command text -> output patterns quoted from the docs (N: a number, ...: any value).
EXPECT = {
    "python scripts/train.py --net lenet_bn --epochs 2": [
        "training on cpu(0), 1 thread",
        "epoch N, loss ..., train acc ..., test acc ..., time ... sec"],
    "python scripts/train.py --net resnet18 --epochs 1 --limit-train 6000 --limit-test 2000": [
        "training on cpu(0)",
        "epoch N, loss ..., train acc ..., test acc ..., time ... sec"],
    "python scripts/train.py --net googlenet --ctx gpu": [
        "training on cpu(0)"],
    "python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --net lenet "
    "--kvstore dist_sync": [
        "[worker 1] ...",
        "epoch N, loss ..., train acc ..., test acc ..., time ... sec"],
    "python scripts/train.py --net lenet_bn --save-dir runs/bn --export out/lenet_bn": [
        "epoch N, loss ..., train acc ..., test acc ..., time ... sec"],
}


# A Python block the docs run as a file: a marker it holds -> (file name, why).
AS_FILE = {
    'kv = mx.kv.create("dist_sync")':
        ("my_loop.py", "a dist_sync worker, run under the launcher by the "
                       "`python scripts/launch.py -n 2 -s 1 -- python my_loop.py` that follows"),
}


@dataclass
class Case:
    """One thing to run: a bash block, an inline command or a Python block."""
    doc: str            # path relative to the repo, e.g. "docs/SCALING.md"
    index: int          # its position among the document's cases, from 1
    kind: str           # "bash", "inline" or "python"
    line: int           # the line it starts on
    text: str           # the block or command as written
    commands: list = field(default_factory=list)  # bash/inline: the commands, in order

    @property
    def id(self):
        return "%s:%d" % (self.doc, self.index)


# ---------------------------------------------------------------- reading the docs

# Documents read for their text but not run: what they quote is not a command to run.
NOT_RUN_DOCS = {
    "docs/FLAGS.md": "generated from the parsers by tools/flag_reference.py (checked by "
                     "tests/test_flag_reference.py); its usage lines are synopses",
}


def doc_paths(root=ROOT):
    """README.md and docs/*.md, relative to ``root``."""
    docs = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
    return ["README.md"] + docs


def split_commands(block):
    """The commands of a bash block: continuation lines joined, comments and blank lines
    dropped, ``a && b`` split into its parts (each may be run or listed on its own)."""
    commands, current = [], ""
    for raw in block.splitlines():
        current += raw.lstrip() if current else raw
        if current.endswith("\\"):
            current = current[:-1].rstrip() + " "
            continue
        command, current = _strip_comment(current).strip(), ""
        if command:
            commands.extend(part.strip() for part in _split_and(command))
    return commands


def _scan(text):
    """(index, char, quoted) for each character of a shell line."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
            yield i, char, True
        else:
            if char in "'\"":
                quote = char
            yield i, char, quote is not None


def _strip_comment(line):
    for i, char, quoted in _scan(line):
        if char == "#" and not quoted and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _split_and(command):
    parts, start = [], 0
    for i, char, quoted in _scan(command):
        if not quoted and command.startswith(" && ", i):
            parts.append(command[start:i])
            start = i + 4
    return parts + [command[start:]]


INLINE = re.compile(r"`(python scripts/[^`]+)`")


def read_cases(doc, root=ROOT):
    """The cases of one document, in its order."""
    lines = open(os.path.join(root, doc), encoding="utf-8").read().split("\n")
    cases, prose, fence, start, body = [], [], None, 0, []
    for number, line in enumerate(lines, 1):
        if fence is None and line.startswith("```"):
            _inline_cases(doc, prose, cases)
            prose, fence, start, body = [], line[3:].strip(), number, []
        elif fence is not None and line.startswith("```"):
            if fence in ("bash", "python"):
                text = "\n".join(body) + "\n"
                commands = split_commands(text) if fence == "bash" else []
                cases.append(Case(doc, 0, fence, start, text, commands))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
    _inline_cases(doc, prose, cases)
    for i, case in enumerate(cases, 1):
        case.index = i
    return cases


def _inline_cases(doc, prose, cases):
    """Inline ``python scripts/...`` commands of a stretch of prose (they may wrap)."""
    if not prose:
        return
    text = "\n".join(line for _, line in prose)
    for match in INLINE.finditer(text):
        command = " ".join(match.group(1).split())
        line = prose[0][0] + text.count("\n", 0, match.start())
        cases.append(Case(doc, 0, "inline", line, command, [command]))


def all_cases(root=ROOT):
    """Every case of every document; an inline command or a Python block that a document
    read before holds as written is not run again (its first case checks it)."""
    seen, cases = set(), []
    for doc in doc_paths(root):
        if doc in NOT_RUN_DOCS:
            continue
        for case in read_cases(doc, root):
            if case.kind != "bash":
                if case.text in seen:
                    continue
                seen.add(case.text)
            cases.append(case)
    return cases


def fill_placeholders(command):
    """``command`` as FILLED fills its placeholders (``command`` itself if it has none)."""
    if command in FILLED:
        return FILLED[command]
    if PLACEHOLDER.search(command):
        raise ValueError("%r has a placeholder; add the command a reader would run to "
                         "FILLED in tools/check_docs.py" % command)
    return command


def check_filled():
    """A FILLED command must be its documented command with only the placeholders filled."""
    for command, filled in FILLED.items():
        pattern = "".join(r"\S+" if PLACEHOLDER.fullmatch(part) else re.escape(part)
                          for part in re.split(r"(%s)" % PLACEHOLDER.pattern, command))
        if not re.fullmatch(pattern, filled):
            raise ValueError("FILLED changes more than the placeholders of %r" % command)


def expected_patterns(command, doc_text):
    """The regexes EXPECT gives ``command``; each pattern must be quoted in the docs."""
    patterns = []
    for quoted in EXPECT.get(command, []):
        if quoted not in doc_text:
            raise ValueError("EXPECT for %r quotes %r, which no document says any more"
                             % (command, quoted))
        regex = re.escape(quoted).replace(r"\.\.\.", r"\S+")
        patterns.append((quoted, re.sub(r"\bN\b", r"\\d+", regex)))
    return patterns


def stale_entries(cases, root=ROOT):
    """NOT_RUN and EXPECT entries that match no command of the docs."""
    commands = {c for case in cases for c in case.commands}
    docs = [open(os.path.join(root, d), encoding="utf-8").read() for d in doc_paths(root)]
    every_inline = {" ".join(m.group(1).split()) for d in docs for m in INLINE.finditer(d)}
    commands |= every_inline
    return sorted((set(NOT_RUN) | set(EXPECT) | set(FILLED) | set(SLOW)) - commands)


# ---------------------------------------------------------------- the scratch folder

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
