#!/usr/bin/env python
"""Mutation testing of the modules that carry the README's guarantees, with cosmic-ray.

Each guarantee module is mutated one small change at a time (an operator swapped, a
True made False, a loop made to run zero times, ...) and its fast tests are run against
every mutant: a mutant the tests do not notice ("survived") is a change of behaviour
that no test pins down. cosmic-ray mutates files in place, so every run works in a copy
of this repository in a temporary folder; the checkout is never touched.

Install cosmic-ray beside the project, in its own virtualenv (it needs no MXNet):

    python -m venv /tmp/mutation-venv && /tmp/mutation-venv/bin/pip install cosmic-ray==8.7.0

then, with the project's environment active (its ``python`` runs the tests):

    /tmp/mutation-venv/bin/python tools/mutation.py --list              # the table
    /tmp/mutation-venv/bin/python tools/mutation.py nan_guard freeze --minutes 40
    /tmp/mutation-venv/bin/python tools/mutation.py all --report out.md  # 50 minutes

``--minutes`` bounds the whole run: each module gets an equal share and runs as many of
its mutants (a seeded random sample when there are more) as its tests' time, measured
on the unmutated code first, allows. On 2 cores ``all`` takes about an hour.

Each module's tests run with ``-x`` and ``OMP_NUM_THREADS=1``; docs/MUTATION.md records
the last report, how long each module took, and what every survivor means.
"""
import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (module, functions or classes mutated (None: all of it), the tests that prove it)
MODULES = {
    "rundir": ("gluon_cnns/artifacts/rundir.py", None,
               "tests/test_run_folder.py"),
    "saver": ("gluon_cnns/training/saver.py", None,
              "tests/test_resume.py -k 'random_moments or ctrl_c or checksummed'"),
    "resume": ("gluon_cnns/training/fit.py", ["_build", "_saver", "fit", "_resumed_records"],
               "tests/test_resume.py -k 'random_moments or ctrl_c'"),
    "io": ("gluon_cnns/io.py", None,  # the JSON bounds, links refused, then the run folder
           "tests/test_hostile_round3.py::test_read_json_checks_size_depth_and_type "
           "tests/test_owned_paths.py tests/test_run_folder.py"),
    "freeze": ("gluon_cnns/training/finetune.py", ["transfer_features", "freeze_features"],
               "tests/test_own_images.py -k 'finetun or frozen or transfer'"),
    "distributed": ("gluon_cnns/training/distributed.py", None,
                    "tests/test_distributed.py -k 'not hostfile and not ssh'"),
    "horovod": ("gluon_cnns/training/horovod.py", None, "tests/test_horovod.py"),
    "nan_guard": ("gluon_cnns/training/engine.py",  # skip: the bad batch undone
                  ["UndoBadBatch", "_choose", "_not_finite", "_state_arrays",
                   "_updates_on_kvstore"],
                  "tests/test_nan_guard.py"),
    "nan_stop": ("gluon_cnns/training/engine.py",  # stop: the first bad batch named
                 ["EpochProgress", "Engine"], "tests/test_nan_guard.py tests/test_resume.py"),
    "export": ("gluon_cnns/inference/export.py", None,  # two nets' numbers, not every net's
               "tests/test_export.py -k 'not (onnx_matches_gluon or reproduces_the_net or "
               "bn_nets_export) or lenet_bn or resnet20_cifar'"),
    "pack": ("gluon_cnns/data/image_pack.py", None, "tests/test_pack.py"),
    "threads": ("gluon_cnns/threads.py", None, "tests/test_threads.py"),
    "tricks": ("gluon_cnns/training/tricks.py", None, "tests/test_tricks.py -m 'not slow'"),
}

# Operators left out to keep a module under about ten minutes: replacements by operators
# these modules never use on numbers (powers, shifts, bit operations, modulo), and the
# variable replacers, which multiply the count without finding other kinds of gaps.
EXCLUDED_OPERATORS = [
    r"core/ReplaceBinaryOperator_.*_(Pow|Mod|FloorDiv|RShift|LShift|BitOr|BitAnd|BitXor)$",
    r"core/ReplaceBinaryOperator_(Pow|Mod|FloorDiv|RShift|LShift|BitOr|BitAnd|BitXor)_.*",
    r"core/ReplaceUnaryOperator_.*Invert.*",
    r"core/VariableReplacer", r"core/VariableInserter",
]

CONFIG = """[cosmic-ray]
module-path = "{module}"
timeout = {timeout}
excluded-modules = []
test-command = "{test_command}"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = {excluded}
"""


def copy_repository(dest):
    """The files git knows (tracked and untracked, not ignored) copied to ``dest``."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in names)):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(dest, name)) or dest, exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))


def line_ranges(path, names):
    """The (first, last) lines of the top-level functions and classes ``names`` in ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read())
    found = {n.name: (n.lineno, n.end_lineno) for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    missing = [n for n in names if n not in found]
    if missing:
        sys.exit("mutation: %s has no %s; update MODULES" % (path, ", ".join(missing)))
    return [found[n] for n in names]


def skip(session, ranges, seed=0):
    """Mark every mutant as skipped (cosmic-ray's own filters skip by operator or by pragma
    only); return the mutants inside ``ranges`` (None: the whole file) in a seeded random
    order, the order in which :func:`unskip` hands them out."""
    import random
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult
    with use_db(session, WorkDB.Mode.open) as db:
        # pending_work_items come in random order and job ids are random: sort by the
        # mutation itself so that the seed alone decides the sample.
        pending = sorted(db.pending_work_items, key=lambda i: (
            i.mutations[0].start_pos, i.mutations[0].operator_name, i.mutations[0].occurrence))
        inside = [i.job_id for i in pending if ranges is None or any(
            first <= i.mutations[0].start_pos[0] <= last for first, last in ranges)]
        for item in pending:
            why = "not sampled" if item.job_id in inside else "outside the guarantee's code"
            db.set_result(item.job_id, WorkResult(output=why,
                                                  worker_outcome=WorkerOutcome.SKIPPED))
    random.Random(seed).shuffle(inside)
    return inside


def unskip(session, job_ids):
    """Make the skipped mutants ``job_ids`` pending again, for the next ``cosmic-ray exec``."""
    import sqlite3
    with sqlite3.connect(session) as db:
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in job_ids])


def results(session):
    """(counts by outcome, [(line, operator, diff) of each survivor])."""
    from cosmic_ray.work_db import WorkDB, use_db
    counts, survivors = {}, []
    with use_db(session, WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            outcome = (result.test_outcome.value if result.test_outcome else
                       result.worker_outcome.value)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "survived":
                m = item.mutations[0]
                survivors.append((m.start_pos[0], m.operator_name, result.diff))
    return counts, sorted(survivors)


def baseline(command, repo, env):
    """Seconds the unmutated module's tests take; exits if they fail (nothing to learn)."""
    started = time.time()
    if subprocess.run(command, shell=True, cwd=repo, env=env).returncode != 0:
        sys.exit("mutation: the tests fail without a mutant: %s" % command)
    return time.time() - started


def run_module(name, python, work, timeout, minutes):
    module, names, tests = MODULES[name]
    repo = os.path.join(work, "repo")
    config, session = os.path.join(work, name + ".toml"), os.path.join(work, name + ".sqlite")
    command = "%s -m pytest -x -q -p no:cacheprovider %s" % (python, tests)
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PYTHONPATH=repo, OMP_NUM_THREADS="1")
    started = time.time()
    seconds = baseline(command, repo, env)
    # A loaded machine can slow the tests several times over: a mutant is a hang only
    # when it takes far longer than the unmutated tests did.
    with open(config, "w") as f:
        f.write(CONFIG.format(module=module, timeout=max(timeout, 3 * seconds),
                              test_command=command.replace('"', '\\"'),
                              excluded="[%s]" % ", ".join('"%s"' % e.replace("\\", "\\\\")
                                                          for e in EXCLUDED_OPERATORS)))
    for step in (["cosmic-ray", "init", config, session],
                 ["cr-filter-operators", session, config]):
        subprocess.run([os.path.join(bin_dir, step[0])] + step[1:], cwd=repo, env=env,
                       check=True)
    # Rounds of as many mutants as the time left allows at the unmutated tests' pace; a
    # killed mutant usually stops its tests early, so later rounds draw more of the sample.
    order = skip(session, names and line_ranges(os.path.join(repo, module), names))
    deadline, kept = started + minutes * 60, 0
    while kept < len(order) and (kept == 0 or deadline - time.time() > seconds):
        batch = order[kept:kept + max(1, int((deadline - time.time()) / (seconds + 1)))]
        unskip(session, batch)
        kept += len(batch)
        subprocess.run([os.path.join(bin_dir, "cosmic-ray"), "exec", config, session],
                       cwd=repo, env=env, check=True)
    scope = len(order)
    counts, survivors = results(session)
    return {"name": name, "module": module, "scope": names, "tests": tests, "in_scope": scope,
            "sampled": kept, "counts": counts, "survivors": survivors,
            "minutes": (time.time() - started) / 60}


def render(done):
    lines = ["| module | scope | tests | mutants | run | killed | survived | timeout | "
             "minutes |", "|---|---|---|---|---|---|---|---|---|"]
    for r in done:
        c = r["counts"]
        lines.append("| %s `%s` | %s | `%s` | %d | %d | %d | %d | %d | %.1f |" % (
            r["name"], r["module"], ", ".join(r["scope"] or ["all"]), r["tests"],
            r["in_scope"], r["sampled"], c.get("killed", 0), c.get("survived", 0),
            c.get("abnormal", 0), r["minutes"]))
    for r in done:
        for line, operator, diff in r["survivors"]:
            lines += ["", "### %s line %d: %s" % (r["module"], line, operator), "",
                      "```diff", "\n".join(l for l in (diff or "").splitlines()
                                           if l.startswith(("+", "-", "@")))[:1500], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/mutation.py", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="names from --list, or 'all'")
    parser.add_argument("--list", action="store_true", help="print the module table and stop")
    parser.add_argument("--python", default=shutil.which("python") or sys.executable,
                        help="the project's Python, which runs the tests (default: python "
                             "on PATH)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one mutant's tests may take, at least 3 times the "
                             "unmutated tests' time (a hang is reported)")
    parser.add_argument("--minutes", type=float, default=50.0,
                        help="the time for all the chosen modules together (default 50): "
                             "each gets an equal share, and runs as many of its mutants, "
                             "drawn at random with a fixed seed, as its tests' time allows")
    parser.add_argument("--report", help="also write the report (markdown) to this file")
    args = parser.parse_args(argv)
    if args.list or not args.modules:
        for name, (module, names, tests) in MODULES.items():
            print("%-12s %-40s %s" % (name, module + (" (%s)" % ", ".join(names) if names
                                                      else ""), tests))
        return 0
    chosen = list(MODULES) if args.modules == ["all"] else args.modules
    unknown = [n for n in chosen if n not in MODULES]
    if unknown:
        parser.error("unknown module %s; see --list" % ", ".join(unknown))
    done = []
    with tempfile.TemporaryDirectory(prefix="mutation-") as work:
        copy_repository(os.path.join(work, "repo"))
        for name in chosen:
            done.append(run_module(name, args.python, work, args.timeout,
                                   args.minutes / len(chosen)))
            print(render(done[-1:]), flush=True)
    text = render(done)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
