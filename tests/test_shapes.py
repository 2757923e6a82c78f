"""Shape trace, parameter counting and FLOP counting (gluon_cnns/shapes.py)."""
import mxnet as mx
import pytest

import gluon_cnns


def conv(c_in, k, c_out, side_out):
    return 2 * c_in * k * k * c_out * side_out * side_out


def pool(k, channels, side_out):
    return k * k * channels * side_out * side_out


def dense(n_in, n_out):
    return 2 * n_in * n_out


def test_lenet_flops_by_hand():
    # 28 -conv5-> 24 -pool2-> 12 -conv3-> 10 -pool2-> 5; dense 1250 -> 128 -> 10
    expected = (conv(1, 5, 20, 24) + pool(2, 20, 12) + conv(20, 3, 50, 10) + pool(2, 50, 5)
                + dense(50 * 5 * 5, 128) + dense(128, 10))
    assert gluon_cnns.flops(gluon_cnns.get_model("lenet"), (1, 1, 28, 28)) == expected


def test_alexnet_flops_by_hand():
    # 224 -conv11/4-> 54 -pool3/2-> 26 -conv5p2-> 26 -pool-> 12 -3 convs-> 12 -pool-> 5
    expected = (conv(1, 11, 96, 54) + pool(3, 96, 26) + conv(96, 5, 256, 26) + pool(3, 256, 12)
                + conv(256, 3, 384, 12) + conv(384, 3, 384, 12) + conv(384, 3, 256, 12)
                + pool(3, 256, 5) + dense(256 * 25, 4096) + dense(4096, 4096)
                + dense(4096, 10))
    assert gluon_cnns.flops(gluon_cnns.get_model("alexnet"), (1, 1, 224, 224)) == expected


def test_flops_are_per_image_and_trace_rows_add_up():
    net = gluon_cnns.get_model("googlenet")
    per_image = gluon_cnns.flops(net, (1, 1, 96, 96))
    assert gluon_cnns.flops(net, (8, 1, 96, 96)) == per_image
    rows = gluon_cnns.trace(net, (8, 1, 96, 96))
    assert sum(row[3] for row in rows) == per_image
    assert rows[-1][1] == (8, 10)


def test_global_pool_reads_whole_map():
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.GlobalAvgPool2D())
    assert gluon_cnns.flops(net, (1, 3, 7, 7)) == 3 * 49


def test_trace_works_on_hybridized_initialized_net():
    net = gluon_cnns.get_model("resnet18")
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 1, 64, 64)))
    rows = gluon_cnns.trace(net, (1, 1, 96, 96))
    assert [row[1] for row in rows][-1] == (1, 10)
    assert sum(row[2] for row in rows) == gluon_cnns.count_parameters(net, (1, 1, 96, 96))


def test_summary_prints_blocks_and_totals(capsys):
    gluon_cnns.summary(gluon_cnns.get_model("lenet"), (1, 1, 28, 28))
    out = capsys.readouterr().out
    assert "total parameters: 170,988" in out
    assert "(1, 10)" in out and "(1, 20, 24, 24)" in out
    assert "2,715,080 FLOPs per image" in out


def test_trace_of_too_small_input_is_clear():
    with pytest.raises(gluon_cnns.InputTooSmallError, match="at least 67x67"):
        gluon_cnns.trace(gluon_cnns.get_model("nin"), (1, 1, 28, 28))


def test_learnable_only_excludes_running_stats():
    net = gluon_cnns.get_model("lenet_bn")
    total = gluon_cnns.count_parameters(net, (1, 1, 28, 28))
    learnable = gluon_cnns.count_parameters(net, (1, 1, 28, 28), learnable_only=True)
    assert total - learnable == 2 * (6 + 16 + 120 + 84)
