"""``report``: one self-contained HTML page about a training run.

    python scripts/report.py runs/lenet_bn            # writes runs/lenet_bn/report.html
    python scripts/report.py runs/flowers --limit 500 --worst 12

The page (images embedded, no script, opens offline) shows the run's curves,
its accuracy per class and confusion matrix on its test images, the most
confident mistakes with their Grad-CAM, and its config, machine, threads and
timings; see :mod:`gluon_cnns.viz.report`. A run folder without a log, or any
other user mistake, is one line on stderr and exit code 2.
"""
import sys

from ..errors import GluonCNNsError
from .common import OneLineParser, non_empty, parse, positive_int, report

PROG = "report"


def build_parser():
    parser = OneLineParser(prog=PROG, description="Write RUN_DIR/report.html: curves, per-class "
                           "accuracy, confusion matrix, worst mistakes with Grad-CAM, config "
                           "and timings of a training run.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        type=non_empty("a training run's --save-dir, e.g. runs/lenet_bn"),
                        help="a training run's --save-dir (with config.json and log.jsonl)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="evaluate on the first N test images only (default: all the run "
                             "tested)")
    parser.add_argument("--worst", type=positive_int, default=8, metavar="K",
                        help="how many of the most confident mistakes to show (default: 8)")
    return parser


def main(argv=None):
    """Entry point of ``scripts/report.py``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    from ..threads import chosen_by_tool, configure
    chosen_by_tool()
    configure()  # before MXNet is imported
    from ..viz.report import write_report
    try:
        path = write_report(args.run_dir, limit=args.limit, worst=args.worst)
    except GluonCNNsError as err:
        return report(PROG, err)
    except KeyboardInterrupt:
        print("%s: interrupted" % PROG, file=sys.stderr)
        return 130
    print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
