"""``export``: turn a training run's --save-dir into files for use elsewhere.

    python scripts/export.py --save-dir runs/lenet --out exports/lenet
    python scripts/export.py --save-dir runs/r20 --out exports/r20 --formats onnx

writes ``exports/lenet-symbol.json`` + ``exports/lenet-0000.params`` (MXNet),
``exports/lenet.onnx`` (ONNX) and ``exports/lenet.json`` (input size,
normalization and class names); see :mod:`gluon_cnns.inference.export`.
``--out exports/`` (a trailing ``/``) writes inside that folder, named after
the net: ``exports/lenet-symbol.json``, ... The run's ``best.params`` is
exported, or its newest epoch's parameters if it has none. An export already
at PATH is replaced as a whole (and the output says so).
A user mistake ends with one line on stderr and exit code 2.
"""
import argparse
import os
import sys

from ..errors import GluonCNNsError, error_line
from .common import OneLineParser, configure_threads, non_empty, parse, report

PROG = "export"


def _format_list(text):
    """Comma-separated export formats, e.g. ``symbol,onnx``."""
    from ..inference.export import FORMATS
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError("expected formats from %s separated by commas, got %r"
                                         % (",".join(FORMATS), text))
    return formats


def _previous_export(args):
    """The sidecar of an export that ``--out`` names already (it will be replaced), or None."""
    from ..artifacts.layout import export_paths, export_target
    from ..artifacts.rundir import RunDir
    try:
        net = RunDir(args.save_dir).read_config()["net"]
        sidecar = export_paths(export_target(args.out, net))["meta"]
    except GluonCNNsError:  # export_checkpoint reports it
        return None
    return sidecar if os.path.exists(sidecar) else None


def build_parser():
    parser = OneLineParser(prog=PROG, description="Export the net of a training run (--save-dir) "
                                            "to MXNet symbol files and/or ONNX.")
    parser.add_argument("--save-dir", required=True, metavar="DIR",
                        type=non_empty("a path, e.g. runs/lenet"),
                        help="the --save-dir of a scripts/train.py run")
    parser.add_argument("--out", required=True, metavar="PATH",
                        type=non_empty("a path, e.g. exports/lenet"),
                        help="export prefix: writes PATH-symbol.json, PATH-0000.params, "
                             "PATH.onnx and PATH.json; a folder ending in / gets files "
                             "named after the net inside it")
    parser.add_argument("--formats", type=_format_list, default=["symbol", "onnx"],
                        metavar="F1,F2", help="symbol, onnx or both (default: symbol,onnx)")
    return parser


def main(argv=None):
    """Entry point of ``scripts/export.py``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    failed = configure_threads(PROG)  # before MXNet is imported
    if failed:
        return failed
    from mxnet.base import MXNetError
    from ..inference.export import export_trained, load_checkpoint_net
    from ..artifacts.export_owner import claim_export_folder
    previous = _previous_export(args)
    try:
        net, config = load_checkpoint_net(args.save_dir)
        claim_export_folder(args.out, "--out")
    except (GluonCNNsError, OSError) as err:
        return report(PROG, err)
    try:
        written = export_trained(net, config, args.out, args.formats)
    except (GluonCNNsError, OSError, MXNetError) as err:  # e.g. the disk filled up
        wrote = isinstance(err, (OSError, MXNetError)) or str(err).startswith("cannot write")
        return report(PROG, "%s; the weights stay in %s and %s%s" % (
            error_line(err).rstrip("."), args.save_dir,
            "the previous export is unchanged" if previous else "nothing was exported",
            ": free some space (or choose another --out) and run this again" if wrote else ""))
    except KeyboardInterrupt:  # the previous export, if any, is still whole
        print("%s: interrupted" % PROG, file=sys.stderr)
        return 130
    for path in written.values():
        print("wrote %s" % path)
    if previous:
        print("replaced the previous export %s" % previous[:-len(".json")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
