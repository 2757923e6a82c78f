"""Command-line tools (``gluon-cnns-train``)."""
