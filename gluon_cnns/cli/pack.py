"""``pack``: an image folder into a RecordIO pack (the writer is ``data.pack_writer``).

    python scripts/pack.py photos/            # photos/train.rec, .idx, val.*, pack.json
    python scripts/pack.py photos/ --out packs/photos --val-split 0.2

An image that cannot be read is left out (one summary line) or, with
``--bad-images stop``, stops the pack. A user mistake, a full disk or an
unwritable OUT: one line on stderr, exit code 2.
"""
import sys

from ..errors import GluonCNNsError, error_line
from .common import (OneLineParser, _number, check_new_folder, configure_threads, non_empty,
                     parse, report)

PROG = "pack"


def fraction(text):
    return _number(text, lambda v: 0 < v < 1, "a fraction between 0 and 1 (exclusive)")


def build_parser():
    parser = OneLineParser(prog=PROG, description="Pack an image folder (DIR/train/<class>/*.jpg"
                           " or DIR/<class>/*.jpg) into RecordIO files for --dataset rec.")
    parser.add_argument("dir", metavar="DIR", type=non_empty("an image folder, e.g. photos"),
                        help="the image folder")
    parser.add_argument("--out", metavar="OUT", type=non_empty("a folder, e.g. packs/photos"),
                        help="folder to write the pack into (default: DIR)")
    parser.add_argument("--val-split", type=fraction, metavar="F",
                        help="without DIR/val/: the fraction of each class held out (default 0.1)")
    parser.add_argument("--bad-images", choices=("skip", "stop"), default="skip",
                        help="images that cannot be read: leave them out (default) or stop")
    parser.add_argument("--overwrite", action="store_true", help="replace a pack already in OUT")
    return parser


def run(args):
    """Pack ``args.dir``; returns the exit code (errors raise)."""
    from ..data.pack_writer import pack_folder, size_text
    if args.out:
        check_new_folder(args.out, "--out", "give a folder for the pack")
    done = pack_folder(args.dir, args.out, args.val_split, args.bad_images, args.overwrite,
                       warn=lambda note: print("%s: %s" % (PROG, note), file=sys.stderr))
    bad, counts, files, seconds = done["bad"], done["counts"], done["files"], done["seconds"]
    if bad:
        print("%s: skipped %d image file%s that cannot be read (first: %s: %s)"
              % (PROG, len(bad), "" if len(bad) == 1 else "s", bad[0][0], bad[0][1]),
              file=sys.stderr)
    print("packed %d train + %d val images of %d classes into %s (train.rec %s, val.rec %s) "
          "in %.2f s, %.0f images/s" % (
              counts["train"], counts["val"], done["classes"], done["out"],
              size_text(files["train.rec"]["size"]), size_text(files["val.rec"]["size"]),
              seconds, (counts["train"] + counts["val"]) / seconds))
    return 0


def main(argv=None):
    """Entry point of ``scripts/pack.py``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    failed = configure_threads(PROG, policy=False)  # before MXNet is imported
    if failed:
        return failed
    import mxnet as mx  # here, not at the top: --help should not wait for MXNet
    try:
        return run(args)
    except GluonCNNsError as err:
        return report(PROG, err)
    except (OSError, mx.base.MXNetError) as err:
        where = getattr(err, "filename", None) or args.out or args.dir
        return report(PROG, "cannot pack (%s: %s); no pack was replaced"
                      % (where, getattr(err, "strerror", None) or error_line(err)))
    except KeyboardInterrupt:
        print("%s: interrupted; the old files are unchanged" % PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
