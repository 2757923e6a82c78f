"""The textbook Gluon training loop, written without the package: what its own loops are
checked against."""
from mxnet import autograd, gluon


def plain_gluon_epoch(net, trainer, batches, loss=None):
    """One pass over ``batches`` of (X, y): forward, softmax cross-entropy (or ``loss``),
    backward, step."""
    loss = loss or gluon.loss.SoftmaxCrossEntropyLoss()
    for X, y in batches:
        with autograd.record():
            l = loss(net(X), y)
        l.backward()
        trainer.step(X.shape[0])
