"""Live training curves in a Jupyter notebook, redrawn in place after every epoch.

d2l's ``Animator`` (d2l book, section 3.6) draws the train loss, train accuracy
and test accuracy into one figure that a notebook replaces as training goes on.
:func:`live_curves` gives that figure to ``train`` only inside a notebook's
kernel; anywhere else it is None and training prints its text lines alone.
The figure is drawn once per epoch from the epoch's record -- no extra reads
of the device -- and shown as a PNG under one display id, so each epoch
updates the same output instead of adding one.
"""
import io
import sys


def in_notebook():
    """Whether this code runs in a Jupyter (IPython) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def live_curves(num_epochs):
    """A :class:`LiveCurves` for ``num_epochs`` epochs in a notebook, else None."""
    return LiveCurves(num_epochs) if in_notebook() else None


class LiveCurves:
    """One figure of loss and accuracy per epoch, updated in place in the notebook."""

    def __init__(self, num_epochs):
        self.num_epochs = num_epochs
        self.records = []
        self.handle = None

    def update(self, record):
        """Add the epoch's ``record`` (``train``'s history entry) and redraw."""
        from IPython.display import Image, display
        self.records.append(record)
        image = Image(data=self.png(), format="png")
        metadata = {"gluon_cnns": {"epochs_drawn": len(self.records)}}
        if self.handle is None:
            self.handle = display(image, metadata=metadata, display_id=True)
        else:
            self.handle.update(image, metadata=metadata)

    def png(self):
        """The figure as PNG bytes (matplotlib's Figure, not pyplot: no second copy is
        shown when the cell ends)."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
        fig = Figure(figsize=(4.5, 3.2), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        epochs = [r["epoch"] for r in self.records]
        for key, label, style in (("loss", "train loss", "-"), ("train_acc", "train acc", "m--"),
                                  ("test_acc", "test acc", "g-.")):
            ax.plot(epochs, [r[key] for r in self.records], style, marker="o", markersize=3,
                    label=label)
        first = epochs[0] - 1 if epochs else 0
        ax.set_xlim(first + 0.9, max(self.num_epochs, first + 1) + 0.1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
