"""The cases of tools/check_docs.py: what it runs of README.md and docs/*.md, and the
tables that say how (placeholders filled in, commands that cannot run here and why,
commands left to the full mode, output the docs quote). See check_docs.py's docstring.
"""
import glob
import os
import re
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A command with placeholders in capitals (NAME, DIR, S) -> what a reader would run, as
# the sentence around it says. Only the placeholders may differ (checked).
FILLED = {
    "python scripts/reproduce.py --net NAME":
        "python scripts/reproduce.py --net lenet_bn",
    "python scripts/train.py --net NET --quiet --ctx cpu --seed 0 --save-dir DIR":
        "python scripts/train.py --net lenet_bn --quiet --ctx cpu --seed 0 --save-dir runs/trial",
    "python scripts/reproduce.py --net NAME --recipe fast":
        "python scripts/reproduce.py --net lenet_bn --recipe fast",
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
    "python scripts/benchmark.py --net none --library-path resnet18,resnet20_cifar,lenet_bn "
    "--peer-python /tmp/torch-venv/bin/python --repeat 3 --warmup 1 --min-time 0.5 "
    "--peer-rounds 4":
        "needs PyTorch in its own virtualenv (GluonCV 0.10 refuses to import beside torch 2), "
        "which this environment does not have",
    "python tools/scaling.py measure --out docs/scaling.json":
        "the scaling measurement: builds namespace hosts (root, the machine-wide host lock) "
        "and trains 3 nets x 3 link rates x 5 setups, about half an hour here; "
        "tests/test_scaling.py runs the same path on lenet",
    "python tools/scaling.py measure --quick --out /tmp/scaling-quick.json":
        "builds namespace hosts (root, the machine-wide host lock) for about a minute; "
        "tests/test_scaling.py runs the same shaped 2-host path on lenet",
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
