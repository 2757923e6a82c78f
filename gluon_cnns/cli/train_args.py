"""The command line of ``gluon-cnns-train``: its flags, and the settings they resolve to.

Every flag is an entry of :data:`gluon_cnns.settings.SETTINGS`; its recipe and run
flags default to None, meaning "from the net's recipe" (or, on ``--resume``, from
the run's config.json); :func:`resolve_settings` merges them.
"""
import argparse
import sys

from .. import settings as table
from .common import OneLineParser, argparse_type

PROG = "gluon-cnns-train"
DEFAULT_NET = table.setting("net").default


def _schedule_text(r):
    """A recipe's schedule in words, e.g. "step x0.1 at 32000,48000 it, warm-up 400 it"."""
    text = r.lr_schedule
    if r.lr_schedule == "step":
        text = "step x%.3g at %s" % (r.lr_factor, ",".join(map(str, r.lr_step_iters))
                                     + " it" if r.lr_step_iters else
                                     ",".join(map(str, r.lr_steps)))
    if r.warmup_iters:
        text += ", warm-up %d it at %g" % (r.warmup_iters, r.warmup_lr)
    if r.warmup_epochs:
        text += ", linear warm-up %d ep" % r.warmup_epochs
    return text


def _extras_text(r):
    """A recipe's momentum, weight decay and tricks, e.g. "m 0.9, wd 1e-4, smoothing 0.1"."""
    parts = [("m %g" % r.momentum) if r.momentum else "", ("wd %g" % r.wd) if r.wd else "",
             "no-wd" if r.no_wd else "", "last-gamma" if r.last_gamma else "",
             ("smoothing %g" % r.label_smoothing) if r.label_smoothing else "",
             ("mixup %g" % r.mixup) if r.mixup else "", ("ema %g" % r.ema) if r.ema else ""]
    return ", ".join(p for p in parts if p) or "-"


def _recipe_table():
    """The --help epilog: every net with the recipes its flags default to."""
    from ..models.registry import RECIPE_SOURCES, list_models, model_spec
    rows = [("net", "recipe", "dataset", "epochs", "batch", "lr", "optimizer", "resize",
             "lr schedule", "momentum, decay, tricks")]
    for name in list_models():
        for i, (recipe_name, r) in enumerate(model_spec(name).recipes.items()):
            rows.append((name if i == 0 else "", recipe_name + (" *" if i == 0 and len(
                model_spec(name).recipes) > 1 else ""), r.dataset, str(r.epochs),
                str(r.batch_size), "%g" % r.lr, r.optimizer, str(r.resize or "-"),
                _schedule_text(r), _extras_text(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    sources = ["%s: %s" % item for item in RECIPE_SOURCES.items()]
    return ("Recipes (what each net trains with when a flag is left out; * the default of "
            "--recipe):\n  " + "\n  ".join(lines) + "\n\nWhere each recipe comes from:\n  "
            + "\n  ".join(sources))


def build_parser():
    """The argument parser: one flag per entry of the settings table, in its order."""
    parser = OneLineParser(
        prog=PROG, usage="%(prog)s [--net NAME] [options]  (--list for the nets)",
        description="Train a classic CNN of the gluon_cnns zoo with its tutorial recipe.",
        epilog=_recipe_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {None: parser}
    for spec in table.flags():
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group)
        groups[spec.group].add_argument(spec.option, *spec.aliases, dest=spec.name,
                                        **_flag_form(spec))
    return parser


def _flag_form(spec):
    """add_argument's keywords for ``spec``: a kept setting left out is None ("from the
    recipe or config.json"); a yes/no setting without a parser is a switch."""
    default = None if spec.kept else spec.default
    help_text = argparse.SUPPRESS if spec.help is None else spec.help
    if spec.kind is bool and spec.parse is None:
        return dict(action="store_true", default=default, help=help_text)
    form = dict(default=default, help=help_text, metavar=spec.metavar)
    if spec.parse is not None:
        form["type"] = argparse_type(spec.parse)
    if spec.choices is not None:
        form["choices"] = spec.choices() if callable(spec.choices) else spec.choices
    return form


# ---------------------------------------------------------------- settings

def given_settings(args):
    """The kept settings the command line gives: setting name -> value, None if left out."""
    return {spec.name: getattr(args, spec.name) for spec in table.kept_flags()}


def resolve_settings(args, saved=None):
    """Merge explicit flags, the saved config (when resuming) and the net's recipe.

    Precedence: a flag given on the command line, then ``saved``, then the recipe.
    """
    from ..training.prepare import run_settings
    return run_settings(given_settings(args), saved)


def check_resume_changes(args, saved, save_dir):
    """Refuse flags that would silently disagree with the saved optimizer state."""
    from ..training.prepare import check_resume
    check_resume(given_settings(args), saved, save_dir,
                 warn=lambda line: print("%s: %s" % (PROG, line), file=sys.stderr))
