"""Quick mode: ``GLUON_CNNS_QUICK=EXAMPLES[,EPOCHS]`` makes any documented command cheap.

With it set, the built-in data sets (Fashion-MNIST, MNIST, CIFAR-10) keep only the
first EXAMPLES examples of each split, every training loop (``utils.train``, and so
``scripts/train.py`` and what calls it) trains at most EPOCHS epochs (a ``--resume`` as
many more), and ``scripts/benchmark.py`` takes one short sample per figure.
Nothing else changes: the same code paths, flags, files and output lines, on less data.
``tools/check_docs.py`` runs every command of the documentation this way, as written.

Unset (the default), nothing is capped. A malformed value is one error line.
"""
import os

from ..errors import UsageError

ENV = "GLUON_CNNS_QUICK"


def quick_caps(environ=None):
    """``(examples, epochs)`` of ``GLUON_CNNS_QUICK``; each None when not capped."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return None, None
    parts = text.split(",")
    try:
        caps = [int(part) for part in parts]
    except ValueError:
        caps = []
    if not 1 <= len(caps) <= 2 or min(caps) < 1:
        raise UsageError("%s=%r is not EXAMPLES[,EPOCHS] (positive integers), e.g. %s=64,2; "
                         "unset it for full runs" % (ENV, text, ENV))
    return caps[0], (caps[1] if len(caps) == 2 else None)


def cap_examples(limit):
    """``limit`` (None: all examples) lowered to the quick mode's example cap."""
    examples, _ = quick_caps()
    if examples is None:
        return limit
    return examples if limit is None else min(limit, examples)


def cap_epochs(num_epochs, start_epoch=0):
    """The last epoch to train: ``num_epochs``, but at most the quick mode's epoch cap
    after ``start_epoch`` (a resumed run trains that many more)."""
    _, epochs = quick_caps()
    return num_epochs if epochs is None else min(num_epochs, start_epoch + epochs)
