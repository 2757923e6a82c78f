"""Fused add+ReLU (tools/fused, MXNet's extension API) against stock ``relu(a + b)``.

    python tools/fused/build.sh /tmp/libfused.so
    OMP_NUM_THREADS=2 GOMP_SPINCOUNT=10000 python -m tools.benchmark.fused_add_relu \
        --lib /tmp/libfused.so --mode micro
    ... --mode step       resnet20_cifar's training step, residual joins fused vs stock
    ... --mode reorders   oneDNN reorders in one steady training step, each side

Both sides run in one process, their samples interleaved (A B A B ...), so a change in
the machine's load hits both; the figures to read are the ratios.
"""
import argparse
import os
import re
import subprocess
import sys
import types

from tools.benchmark.timing import measure_throughputs

SHAPES = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8)]  # resnet20_cifar, batch 128
MARK = "== steady step =="


def join_blocks(fused):
    """A hybridized block computing relu(a + b), stock or through the custom operator."""
    from mxnet.gluon import nn

    class Join(nn.HybridBlock):
        def hybrid_forward(self, F, a, b):  # pylint: disable=arguments-differ
            return F.fused_add_relu(a, b) if fused else F.Activation(a + b, act_type="relu")
    block = Join()
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def micro(args):
    import mxnet as mx
    from mxnet import autograd
    for shape in SHAPES:
        a, b, g = (mx.nd.random.normal(shape=shape) for _ in range(3))
        a.attach_grad()
        b.attach_grad()

        def call(block):
            with autograd.record():
                y = block(a, b)
            y.backward(g)
        calls = [lambda blk=join_blocks(f): call(blk) for f in (False, True)]
        stock, fused = measure_throughputs(calls, shape[0], 2, args.repeat, args.min_time)
        print(f"{'x'.join(map(str, shape))}: stock {stock['median']:.0f} img/s, fused "
              f"{fused['median']:.0f} img/s, fused/stock {fused['median'] / stock['median']:.3f}"
              f" (samples {len(stock['samples'])})", flush=True)


def fused_forward(self, F, x):
    residual = x if self.shortcut is None else self.shortcut(x)
    return F.fused_add_relu(self.body(x), residual)


def trainer_step(fused, seed=0):
    """A call running one resnet20_cifar training step (batch 128, SGD with momentum)."""
    import mxnet as mx
    from mxnet import autograd, gluon
    import gluon_cnns
    from gluon_cnns.models.resnet_cifar import CIFARBasicBlock
    mx.random.seed(seed)
    net = gluon_cnns.get_model("resnet20_cifar")
    net.initialize(mx.init.Xavier())
    if fused:
        for block in _walk(net):
            if isinstance(block, CIFARBasicBlock):
                block.hybrid_forward = types.MethodType(fused_forward, block)
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.normal(shape=(128, 3, 32, 32))
    y = mx.nd.array([i % 10 for i in range(128)])

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(128)
    return step


def _walk(block):
    yield block
    for child in block._children.values():  # pylint: disable=protected-access
        yield from _walk(child)


def step_mode(args):
    stock, fused = measure_throughputs([trainer_step(False), trainer_step(True)], 128, 2,
                                       args.repeat, args.min_time)
    pairs = sorted(f / s for s, f in zip(stock["samples"], fused["samples"]))
    print(f"resnet20_cifar training step: stock {stock['median']:.0f} img/s, fused "
          f"{fused['median']:.0f} img/s, fused/stock {fused['median'] / stock['median']:.3f}; "
          f"{len(pairs)} adjacent pairs fused/stock: median {pairs[len(pairs) // 2]:.3f}, "
          f"range {pairs[0]:.3f}-{pairs[-1]:.3f}", flush=True)

def one_step(args):
    import mxnet as mx
    step = trainer_step(args.fused)
    for _ in range(2):
        step()
    mx.nd.waitall()
    print(MARK, flush=True)
    step()
    mx.nd.waitall()


def reorders(args):
    for fused in (False, True):
        env = dict(os.environ, MKLDNN_VERBOSE="1", DNNL_VERBOSE="1")
        cmd = [sys.executable, "-m", "tools.benchmark.fused_add_relu", "--lib", args.lib,
               "--mode", "one-step"] + (["--fused"] if fused else [])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        steady = [line.split(",") for line in out.split(MARK, 1)[1].splitlines()
                  if line.startswith(("dnnl_verbose,exec", "mkldnn_verbose,exec"))]
        prims = [fields[3] for fields in steady]
        count = {p: prims.count(p) for p in sorted(set(prims))}
        # Activations in oneDNN's blocked layout are aBcd<8|16>b (nChw8c/nChw16c);
        # weights are ABcd...; a reorder touching aBcd..b moves a feature map.
        maps = [f for f in steady if f[3] == "reorder" and re.search(r"\baBcd\d+b", f[6])]
        print(f"{'fused' if fused else 'stock'}: one steady step, oneDNN primitives {count}; "
              f"feature-map reorders {len(maps)}, {sum(float(f[-1]) for f in maps):.1f} ms",
              flush=True)

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", required=True, help="libfused.so from tools/fused/build.sh")
    parser.add_argument("--mode", choices=["micro", "step", "reorders", "one-step"],
                        default="micro")
    parser.add_argument("--fused", action="store_true", help="--mode one-step: the fused side")
    parser.add_argument("--repeat", type=int, default=5, help="samples per side")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds a sample")
    args = parser.parse_args()
    import mxnet as mx
    mx.library.load(os.path.abspath(args.lib), verbose=False)
    {"micro": micro, "step": step_mode, "reorders": reorders, "one-step": one_step}[args.mode](args)


if __name__ == "__main__":
    main()
