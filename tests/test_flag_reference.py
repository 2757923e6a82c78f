"""docs/FLAGS.md is generated from the scripts' parsers: current, complete, MXNet-free."""
import argparse
import os
import subprocess
import sys

from tools import flag_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sections(text):
    """{script: its section of FLAGS.md}."""
    parts = text.split("\n## scripts/")[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


def test_flags_md_is_the_generators_output():
    with open(os.path.join(ROOT, "docs", "FLAGS.md"), encoding="utf-8") as f:
        assert f.read() == flag_reference.render(), \
            "docs/FLAGS.md is out of date: run python tools/flag_reference.py"


def test_every_flag_of_every_script_is_listed_in_its_section():
    sections = _sections(flag_reference.render())
    parsers = flag_reference.parsers()
    assert sorted(sections) == sorted(script for script, _ in parsers) == sorted(
        name for name in os.listdir(os.path.join(ROOT, "scripts")) if name.endswith(".py"))
    for script, parser in parsers:
        entries = [line for line in sections[script].splitlines() if line.startswith("- `")]
        assert len(entries) == len(parser._actions), script
        for action in parser._actions:
            names = action.option_strings or [action.metavar or action.dest]
            for name in names:
                assert any(e.startswith("- `" + name) or ", %s" % name in e.split("`")[1]
                           for e in entries), (script, name)
            if action.help not in (None, argparse.SUPPRESS):
                first_words = " ".join(action.help.split()[:3])
                assert first_words.replace("<", "\\<") in sections[script], (script, names)


def test_reproduce_documents_where_a_reduced_run_goes():
    (docs_dir,) = [line for line in _sections(flag_reference.render())["reproduce.py"]
                   .splitlines() if line.startswith("- `--docs-dir")]
    assert "A reduced run" in docs_dir and "its own --docs-dir" in docs_dir
    assert "default: `docs`" in docs_dir  # the checkout's path is not written out


def test_building_the_reference_imports_no_mxnet():
    code = ("import sys; sys.path.insert(0, %r); from tools import flag_reference; "
            "flag_reference.render(); print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('mxnet', 'gluoncv')))" % ROOT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_check_mode_finds_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "FLAGS.md"
    stale.write_text(flag_reference.render().replace("--top-k", "--top"))
    monkeypatch.setattr(flag_reference, "OUT", str(stale))
    assert flag_reference.main(["--check"]) == 1
    stale.write_text(flag_reference.render())
    assert flag_reference.main(["--check"]) == 0
