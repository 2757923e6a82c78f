"""Speed, measured: throughput of every net of the zoo, against the machine and GluonCV.

    python scripts/benchmark.py --net lenet_bn,resnet18 --repeat 5 --json bench.json
    python scripts/benchmark.py --net lenet_bn --dtype int8,bf16 --markdown

For each net, at its recipe's input size and batch size, on random data:

* forward images/s, imperative and hybridized (``static_alloc``/``static_shape``);
* a training step's images/s (forward + backward + ``trainer.step``, hybridized);
* FLOPs per image (:func:`gluon_cnns.flops`) and the GFLOP/s achieved, as a
  percentage of the machine's GEMM limit measured in the same run (a training
  step is counted as 3x the forward FLOPs: forward, and the two backward
  products, one for the input gradient and one for the weight gradient);
* the architecturally identical GluonCV net, where there is one, timed the same way.

Then, optionally: end-to-end training of N batches with our loader and loop
against the tutorials' own loop (``--e2e-nets``); int8/bf16 inference of a net
trained in the run (``--dtype``); bf16 against fp32 training (``--bf16-train``);
a per-operator profile of a training step (``--profile``); whether the own-image
loader keeps up with training (``--loader resnet18``); a plain user script
against PyTorch (``--library-path``). ``--render FILE`` re-prints (and with
``--markdown`` rewrites) a report saved by ``--json``; ``--merge-into FILE`` puts
the measured sections into one.

Timing: every figure is the median of ``--repeat`` samples (min-max shown),
after ``--warmup`` untimed ones; a sample repeats the call until it lasts
``--min-time`` seconds. Only ratios taken within one run are comparable:
the machine may be shared.

One module per suite: ``machine`` (machine info, GEMM limit), ``timing``,
``nets`` (per-net figures, GluonCV twins), ``end_to_end`` (our loop against the
tutorial's), ``lowp`` (int8/bf16), ``profile``, ``loader`` (own-image loader),
``threads`` (the thread matrix), ``peer`` and ``library`` (against PyTorch),
``report`` (text and Markdown) and ``main`` (command line).
"""
