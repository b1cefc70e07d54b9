#!/usr/bin/env python3
"""Writes small look-alikes of the ONNX Model Zoo (Caffe2, opset 9) and torchvision-export
graphs that dicesim must load, plus a few invalid models for its error messages.

Usage: make_models.py OUT_DIR

Weights are random with a fixed seed, scaled (He initialisation) so that activations stay
O(1). Spatial sizes are small so that the tests that split and run them are fast.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
# Float weights of this many elements or more become ConstantOfShape in 'light' models (the
# threshold of onnx.tools.replace_constants.replace_initializer_by_constant_of_shape).
LIGHT_MIN = 128


class Net:
    """Accumulates nodes and weights. `weights` says how weights are stored:
    'init' (initializers), 'init+input' (initializers also listed as graph inputs, as old
    exporters such as Caffe2 did), 'constant' (Constant nodes) or 'light' (as 'init+input',
    but float weights of LIGHT_MIN elements or more are made by ConstantOfShape from a shape
    initializer, as the ONNX Model Zoo's "light" models are)."""

    def __init__(self, seed, weights="init", named=True):
        self.rng = np.random.default_rng(seed)
        self.weights = weights
        self.named = named
        self.nodes = []
        self.inits = []
        self.weight_inputs = []
        self.n = 0

    def uid(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, name, arr):
        arr = np.asarray(arr)
        if self.weights == "light" and arr.dtype == np.float32 and arr.size >= LIGHT_MIN:
            return self.constant_of_shape(name, arr)
        if self.weights == "constant":
            self.nodes.append(
                helper.make_node(
                    "Constant",
                    [],
                    [name],
                    name=(name + "_const") if self.named else "",
                    value=numpy_helper.from_array(arr, name),
                )
            )
        else:
            self.inits.append(numpy_helper.from_array(arr, name))
            if self.weights in ("init+input", "light"):
                dt = helper.np_dtype_to_tensor_dtype(arr.dtype)
                self.weight_inputs.append(helper.make_tensor_value_info(name, dt, arr.shape))
        return name

    def constant_of_shape(self, name, arr):
        """`name` = ConstantOfShape(`name`__SHAPE), the shape an initializer that is also a
        graph input. The fill value keeps activations O(1): the mean of a vector, one over
        the fan-in of a matrix or kernel."""
        shape = self.const(name + "__SHAPE", np.array(arr.shape, np.int64))
        v = float(np.abs(arr).mean()) if arr.ndim == 1 else 1.0 / arr[0].size
        value = numpy_helper.from_array(np.array([v], np.float32))
        self.nodes.append(helper.make_node("ConstantOfShape", [shape], [name], value=value))
        return name

    def node(self, op, inputs, name, n_out=1, **attrs):
        outs = [name + ("" if i == 0 else f"_o{i}") for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op, inputs, outs, name=name if self.named else "", **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, name, stride=1, pad=None, group=1, bias=True):
        pad = k // 2 if pad is None else pad
        fan_in = cin // group * k * k
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(
            np.float32
        )
        ins = [x, self.const(name + "_w", w)]
        if bias:
            ins.append(self.const(name + "_b", (self.rng.standard_normal(cout) * 0.1).astype(np.float32)))
        return self.node(
            "Conv",
            ins,
            name,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
        )

    def bn(self, x, c, name):
        r = self.rng
        return self.node(
            "BatchNormalization",
            [
                x,
                self.const(name + "_scale", (1.0 + 0.1 * r.standard_normal(c)).astype(np.float32)),
                self.const(name + "_bias", (0.1 * r.standard_normal(c)).astype(np.float32)),
                self.const(name + "_mean", (0.1 * r.standard_normal(c)).astype(np.float32)),
                self.const(name + "_var", (1.0 + 0.1 * r.uniform(size=c)).astype(np.float32)),
            ],
            name,
            epsilon=1e-5,
        )

    def relu(self, x, name):
        return self.node("Relu", [x], name)

    def gemm(self, x, k, n, name):
        w = (self.rng.standard_normal((n, k)) * np.sqrt(1.0 / k)).astype(np.float32)
        b = (self.rng.standard_normal(n) * 0.1).astype(np.float32)
        return self.node(
            "Gemm", [x, self.const(name + "_w", w), self.const(name + "_b", b)], name, transB=1
        )

    def model(self, inputs, outputs, opset, ir_version=None):
        g = helper.make_graph(
            self.nodes, "g", inputs + self.weight_inputs, outputs, initializer=self.inits
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.producer_name = "dicesim-test"
        # IR 7 (ONNX 1.8) covers opsets up to 13 and is read by every runtime we test with.
        m.ir_version = 7 if ir_version is None else ir_version
        return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


def alexnet_c2():
    """Caffe2-style AlexNet: opset 9, IR 3, unnamed nodes, weights as initializers that are
    also graph inputs; LRN, grouped convolutions, Dropout with a mask output, Reshape from an
    initializer, Gemm, Softmax."""
    n = Net(1, weights="init+input", named=False)
    x = n.conv("data_0", 3, 16, 11, "conv1", stride=4, pad=2)  # 15x15
    x = n.relu(x, "conv1_2")
    x = n.node("LRN", [x], "norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0)
    x = n.node("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2])  # 7x7
    x = n.conv(x, 16, 32, 5, "conv2", group=2)
    x = n.relu(x, "conv2_2")
    x = n.node("LRN", [x], "norm2", size=5, alpha=1e-4, beta=0.75, bias=1.0)
    x = n.node("MaxPool", [x], "pool2", kernel_shape=[3, 3], strides=[2, 2])  # 3x3
    x = n.relu(n.conv(x, 32, 48, 3, "conv3"), "conv3_2")
    x = n.relu(n.conv(x, 48, 48, 3, "conv4", group=2), "conv4_2")
    x = n.relu(n.conv(x, 48, 32, 3, "conv5", group=2), "conv5_2")
    x = n.node("MaxPool", [x], "pool5", kernel_shape=[3, 3], strides=[2, 2])  # 1x1
    x = n.node("Reshape", [x, n.const("OC2_DUMMY_1", np.array([1, -1], np.int64))], "pool5_1")
    x = n.relu(n.gemm(x, 32, 64, "fc6"), "fc6_2")
    x, _mask = n.node("Dropout", [x], "fc6_3", n_out=2, ratio=0.5)
    x = n.relu(n.gemm(x, 64, 64, "fc7"), "fc7_2")
    x = n.node("Dropout", [x], "fc7_3", ratio=0.5)
    x = n.gemm(x, 64, 10, "fc8")
    x = n.node("Softmax", [x], "prob_1")
    return n.model([vi("data_0", [1, 3, 64, 64])], [vi(x, [1, 10])], opset=9, ir_version=3)


def googlenet_c2():
    """GoogLeNet-style: inception branches joined by Concat, weights as Constant nodes."""
    n = Net(2, weights="constant")
    x = n.relu(n.conv("data_0", 3, 16, 7, "conv1", stride=2, pad=3), "conv1_relu")  # 16
    x = n.node("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])  # 8
    x = n.node("LRN", [x], "pool1_norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0)
    x = n.relu(n.conv(x, 16, 16, 1, "conv2_reduce"), "conv2_relu_reduce")
    x = n.relu(n.conv(x, 16, 24, 3, "conv2"), "conv2_relu")
    x = n.node("LRN", [x], "conv2_norm2", size=5, alpha=1e-4, beta=0.75, bias=1.0)
    c = 24
    for i, (b1, b2r, b2, b3r, b3, b4) in enumerate([(8, 8, 12, 4, 4, 4), (12, 8, 16, 4, 8, 8)]):
        p = f"inception_{i}"
        o1 = n.relu(n.conv(x, c, b1, 1, p + "_1x1"), p + "_relu_1x1")
        o2 = n.relu(n.conv(x, c, b2r, 1, p + "_3x3_reduce"), p + "_relu_3x3_reduce")
        o2 = n.relu(n.conv(o2, b2r, b2, 3, p + "_3x3"), p + "_relu_3x3")
        o3 = n.relu(n.conv(x, c, b3r, 1, p + "_5x5_reduce"), p + "_relu_5x5_reduce")
        o3 = n.relu(n.conv(o3, b3r, b3, 5, p + "_5x5"), p + "_relu_5x5")
        o4 = n.node("MaxPool", [x], p + "_pool", kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4)
        o4 = n.relu(n.conv(o4, c, b4, 1, p + "_pool_proj"), p + "_relu_pool_proj")
        x = n.node("Concat", [o1, o2, o3, o4], p + "_output", axis=1)
        c = b1 + b2 + b3 + b4
    x = n.node("AveragePool", [x], "pool5", kernel_shape=[8, 8], strides=[1, 1])
    x = n.node("Dropout", [x], "pool5_drop", ratio=0.4)
    x = n.node("Reshape", [x, n.const("OC2_DUMMY_0", np.array([1, c], np.int64))], "pool5_flat")
    x = n.gemm(x, c, 10, "loss3_classifier")
    x = n.node("Softmax", [x], "prob")
    return n.model([vi("data_0", [1, 3, 32, 32])], [vi(x, [1, 10])], opset=9, ir_version=3)


def densenet_c2():
    """DenseNet-style: Concat chains, BatchNormalization, AveragePool; then a Sum of three."""
    n = Net(3)
    x = n.conv("data_0", 3, 16, 3, "conv0", bias=False)
    x = n.relu(n.bn(x, 16, "norm0"), "relu0")
    x = n.node("MaxPool", [x], "pool0", kernel_shape=[2, 2], strides=[2, 2])  # 16
    c = 16
    for i in range(3):
        p = f"denseblock1_layer{i}"
        y = n.relu(n.bn(x, c, p + "_norm1"), p + "_relu1")
        y = n.conv(y, c, 16, 1, p + "_conv1", bias=False)
        y = n.relu(n.bn(y, 16, p + "_norm2"), p + "_relu2")
        y = n.conv(y, 16, 8, 3, p + "_conv2", bias=False)
        x = n.node("Concat", [x, y], p + "_concat", axis=1)
        c += 8
    x = n.relu(n.bn(x, c, "transition1_norm"), "transition1_relu")
    x = n.conv(x, c, 24, 1, "transition1_conv", bias=False)
    x = n.node("AveragePool", [x], "transition1_pool", kernel_shape=[2, 2], strides=[2, 2])  # 8
    a = n.conv(x, 24, 16, 1, "sum_a")
    b = n.conv(x, 24, 16, 3, "sum_b")
    d = n.node("AveragePool", [n.conv(x, 24, 16, 1, "sum_c")], "sum_c_pool",
               kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4)
    x = n.relu(n.node("Sum", [a, b, d], "sum3"), "sum_relu")
    x = n.node("GlobalAveragePool", [x], "pool_final")
    x = n.node("Flatten", [x], "flatten", axis=1)
    x = n.gemm(x, 16, 10, "fc")
    return n.model([vi("data_0", [1, 3, 32, 32])], [vi(x, [1, 10])], opset=9)


def squeezenet():
    """SqueezeNet-style fire modules with ceil_mode max pooling (MaxPool-10)."""
    n = Net(4)
    x = n.relu(n.conv("data_0", 3, 16, 3, "conv1", stride=2, pad=0), "relu_conv1")  # 22
    x = n.node("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)  # 11
    c = 16
    for i, (s, e) in enumerate([(8, 16), (8, 16)]):
        p = f"fire{i + 2}"
        sq = n.relu(n.conv(x, c, s, 1, p + "_squeeze1x1"), p + "_relu_squeeze1x1")
        e1 = n.relu(n.conv(sq, s, e, 1, p + "_expand1x1"), p + "_relu_expand1x1")
        e3 = n.relu(n.conv(sq, s, e, 3, p + "_expand3x3"), p + "_relu_expand3x3")
        x = n.node("Concat", [e1, e3], p + "_concat", axis=1)
        c = 2 * e
    x = n.node("MaxPool", [x], "pool3", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)  # 6
    x = n.node("Dropout", [x], "drop9", ratio=0.5)
    x = n.relu(n.conv(x, c, 10, 1, "conv10"), "relu_conv10")
    x = n.node("GlobalAveragePool", [x], "pool10")
    x = n.node("Reshape", [x, n.const("flat_shape", np.array([0, -1], np.int64))], "flat")
    x = n.node("Softmax", [x], "softmaxout_1")
    return n.model([vi("data_0", [1, 3, 46, 46])], [vi(x, [1, 10])], opset=10)


def resnet_tv():
    """torchvision-export-style ResNet blocks at opset 13: symbolic batch 'N', slash-named
    nodes, Flatten as Shape->Gather->Unsqueeze->Concat->Reshape, Constant + Cast."""
    n = Net(5)
    x = n.conv("input", 3, 16, 7, "/conv1/Conv", stride=2, pad=3, bias=False)  # 16
    x = n.relu(n.bn(x, 16, "/bn1/BatchNormalization"), "/relu/Relu")
    x = n.node("MaxPool", [x], "/maxpool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)  # 8
    c = 16
    for li, (cout, stride) in enumerate([(16, 1), (32, 2)]):
        p = f"/layer{li + 1}/layer{li + 1}.0"
        y = n.conv(x, c, cout, 3, p + "/conv1/Conv", stride=stride, bias=False)
        y = n.relu(n.bn(y, cout, p + "/bn1/BatchNormalization"), p + "/relu/Relu")
        y = n.conv(y, cout, cout, 3, p + "/conv2/Conv", bias=False)
        y = n.bn(y, cout, p + "/bn2/BatchNormalization")
        if stride != 1 or cout != c:
            x = n.conv(x, c, cout, 1, p + "/downsample/downsample.0/Conv", stride=stride, bias=False)
            x = n.bn(x, cout, p + "/downsample/downsample.1/BatchNormalization")
        x = n.node("Add", [y, x], p + "/Add")
        x = n.relu(x, p + "/relu_1/Relu")
        c = cout
    x = n.node("GlobalAveragePool", [x], "/avgpool/GlobalAveragePool")
    # A scale that the exporter wrote as an int64 Constant and a Cast.
    k = n.node("Constant", [], "/Constant_scale", value=numpy_helper.from_array(np.array(2, np.int64)))
    k = n.node("Cast", [k], "/Cast_scale", to=F)
    half = n.node("Constant", [], "/Constant_half", value=numpy_helper.from_array(np.array(0.5, np.float32)))
    k = n.node("Mul", [k, half], "/Mul_scale")
    x = n.node("Mul", [x, k], "/Mul")
    # torch.flatten(x, 1) as exported by old torch.onnx: Shape -> Gather -> Unsqueeze ->
    # Concat -> Reshape.
    s = n.node("Shape", [x], "/Shape")
    i0 = n.node("Constant", [], "/Constant", value=numpy_helper.from_array(np.array(0, np.int64)))
    d0 = n.node("Gather", [s, i0], "/Gather", axis=0)
    d0 = n.node("Cast", [d0], "/Cast", to=TensorProto.INT64)
    ax = n.node("Constant", [], "/Constant_1", value=numpy_helper.from_array(np.array([0], np.int64)))
    d0 = n.node("Unsqueeze", [d0, ax], "/Unsqueeze")
    m1 = n.node("Constant", [], "/Constant_2", value=numpy_helper.from_array(np.array([-1], np.int64)))
    shp = n.node("Concat", [d0, m1], "/Concat", axis=0)
    x = n.node("Reshape", [x, shp], "/Reshape")
    x = n.gemm(x, c, 10, "/fc/Gemm")
    out = n.node("Identity", [x], "/output_identity")
    n.nodes[-1].output[0] = "output"
    return n.model([vi("input", ["N", 3, 32, 32])], [vi("output", ["N", 10])], opset=13)


def nhwc():
    """A TensorFlow-style NHWC input followed by a Transpose to NCHW."""
    n = Net(6)
    x = n.node("Transpose", ["x"], "to_nchw", perm=[0, 3, 1, 2])
    x = n.relu(n.conv(x, 3, 16, 3, "conv1"), "relu1")
    x = n.relu(n.conv(x, 16, 32, 3, "conv2", stride=2), "relu2")
    x = n.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
    x = n.node("ReduceMean", [x], "mean", axes=[1, 2], keepdims=0)
    x = n.gemm(x, 32, 10, "logits")
    return n.model([vi("x", [1, 32, 32, 3])], [vi(x, [1, 10])], opset=11)


def symbolic_hw():
    """Input with non-batch symbolic dimensions: needs --input-shape x=1,3,H,W."""
    n = Net(7)
    x = n.relu(n.conv("x", 3, 8, 3, "conv1"), "relu1")
    x = n.relu(n.conv(x, 8, 16, 3, "conv2", stride=2), "relu2")
    y = n.conv(x, 16, 16, 3, "conv3")
    x = n.relu(n.node("Add", [x, y], "add"), "relu3")
    x = n.node("GlobalAveragePool", [x], "gap")
    x = n.node("Flatten", [x], "flatten")
    return n.model([vi("x", ["batch", 3, "H", "W"])], [vi(x, ["batch", 16])], opset=11)


def two_outputs():
    """Two graph outputs; one ('mask') is also read by a later layer."""
    n = Net(8)
    f = n.relu(n.conv("image", 3, 16, 3, "stem"), "stem_relu")
    m = n.node("Sigmoid", [n.conv(f, 16, 16, 1, "mask_conv")], "mask_sigmoid")
    n.nodes[-1].output[0] = "mask"
    g = n.node("Mul", [f, "mask"], "gate")
    g = n.relu(n.conv(g, 16, 32, 3, "head_conv", stride=2), "head_relu")
    g = n.node("GlobalAveragePool", [g], "head_gap")
    g = n.node("Flatten", [g], "head_flatten")
    n.gemm(g, 32, 5, "head_fc")
    n.nodes[-1].output[0] = "logits"
    del m
    return n.model([vi("image", [1, 3, 32, 32])], [vi("logits", [1, 5]), vi("mask", [1, 16, 32, 32])], opset=11)


def resnet_c2():
    """Caffe2-style ResNet: Sum for the residual adds, IR 3, unnamed nodes."""
    n = Net(11, weights="init+input", named=False)
    x = n.relu(n.bn(n.conv("data_0", 3, 16, 3, "conv1"), 16, "bn1"), "r1")
    for i in range(2):
        y = n.relu(n.bn(n.conv(x, 16, 16, 3, f"b{i}c1"), 16, f"b{i}bn1"), f"b{i}r1")
        y = n.bn(n.conv(y, 16, 16, 3, f"b{i}c2"), 16, f"b{i}bn2")
        x = n.relu(n.node("Sum", [y, x], f"b{i}sum"), f"b{i}r2")
    x = n.node("AveragePool", [x], "pool", kernel_shape=[16, 16])
    x = n.node("Reshape", [x, n.const("shp", np.array([1, 16], np.int64))], "flat")
    x = n.gemm(x, 16, 10, "fc")
    x = n.node("Softmax", [x], "prob")
    return n.model([vi("data_0", [1, 3, 16, 16])], [vi(x, [1, 10])], opset=9, ir_version=3)

def light_c2():
    """Like the ONNX Model Zoo's "light" models (onnx/backend/test/data/light): IR 3, opset
    9, unnamed nodes; every float weight of 128 elements or more is ConstantOfShape of a
    shape initializer that is also a graph input, smaller ones stay initializers (inputs
    too). conv3's kernel (73728 elements) and fc6's matrix (131072) are larger than what
    dicesim decodes. A BatchNormalization as Mul/Add of Unsqueezed constants, as in the
    light DenseNet."""
    n = Net(15, weights="light", named=False)
    x = n.relu(n.conv("data_0", 3, 32, 3, "conv1", stride=2), "conv1_2")  # 16
    x = n.relu(n.conv(x, 32, 64, 3, "conv2"), "conv2_2")
    x = n.conv(x, 64, 128, 3, "conv3", stride=2, bias=False)  # 8
    r = n.rng
    s = n.const("bn3_s", (1.0 + 0.1 * r.standard_normal(128)).astype(np.float32))
    b = n.const("bn3_b", (0.1 * r.standard_normal(128)).astype(np.float32))
    x = n.node("Mul", [x, n.node("Unsqueeze", [s], "bn3_s_u", axes=[1, 2])], "bn3_mul")
    x = n.node("Add", [x, n.node("Unsqueeze", [b], "bn3_b_u", axes=[1, 2])], "bn3_add")
    x = n.relu(x, "conv3_2")
    x = n.node("MaxPool", [x], "pool3", kernel_shape=[2, 2], strides=[2, 2])  # 4
    x = n.node("Reshape", [x, n.const("OC2_DUMMY_1", np.array([1, -1], np.int64))], "pool3_1")
    x = n.relu(n.gemm(x, 2048, 64, "fc6"), "fc6_2")
    x = n.gemm(x, 64, 10, "fc7")
    x = n.node("Softmax", [x], "prob_1")
    return n.model([vi("data_0", [1, 3, 32, 32])], [vi(x, [1, 10])], opset=9, ir_version=3)


def torch11():
    """torch.onnx at opset 11: Clip with min/max inputs, Pad, Split, Resize with an empty
    roi, Shape->Slice->Concat->Reshape, Unsqueeze/Squeeze with axes attributes."""
    n = Net(12)
    x = n.conv("input.1", 3, 8, 3, "Conv_0")
    lo = n.const("min", np.array(0.0, np.float32)); hi = n.const("max", np.array(6.0, np.float32))
    x = n.node("Clip", [x, lo, hi], "Clip_1")
    x = n.node("Pad", [x, n.const("pads", np.array([0,0,1,1,0,0,1,1], np.int64)), n.const("pv", np.array(0.0, np.float32))], "Pad_2", mode="constant")
    a, b = n.node("Split", [x], "Split_3", n_out=2, axis=1, split=[4, 4])
    b = n.node("Mul", [b, b], "Mul_4")
    x = n.node("Concat", [b, a], "Concat_5", axis=1)
    roi = n.const("roi", np.array([], np.float32)); sc = n.const("scales", np.array([1,1,2,2], np.float32))
    x = n.node("Resize", [x, roi, sc], "Resize_6", mode="nearest")
    x = n.conv(x, 8, 8, 3, "Conv_7", stride=2)
    s = n.node("Shape", [x], "Shape_8")
    s = n.node("Slice", [s, n.const("st", np.array([0], np.int64)), n.const("en", np.array([2], np.int64)), n.const("ax", np.array([0], np.int64))], "Slice_9")
    s = n.node("Concat", [s, n.const("m1", np.array([-1], np.int64))], "Concat_10", axis=0)
    x = n.node("Reshape", [x, s], "Reshape_11")
    x = n.node("Unsqueeze", [x], "Unsqueeze_12", axes=[3])
    x = n.node("ReduceMean", [x], "ReduceMean_13", axes=[2], keepdims=1)
    x = n.node("Squeeze", [x], "Squeeze_14", axes=[2, 3])
    return n.model([vi("input.1", ["batch_size", 3, 24, 24])], [vi(x, ["batch_size", 8])], opset=11)

def unordered_dupnames():
    """Nodes not in topological order and two pairs of nodes with the same name (invalid for
    onnx.checker and ONNX Runtime, but dicesim and tract read it)."""
    n = Net(13)
    x = n.relu(n.conv("x", 3, 8, 3, "conva"), "acta")
    y = n.relu(n.conv(x, 8, 8, 3, "convb"), "actb")
    z = n.node("Add", [x, y], "add")
    z = n.node("GlobalAveragePool", [z], "gap")
    m = n.model([vi("x", [1, 3, 16, 16])], [vi(z, [1, 8, 1, 1])], opset=11)
    for nd in m.graph.node:
        nd.name = {"conva": "conv", "convb": "conv", "acta": "act", "actb": "act"}.get(nd.name, nd.name)
    m.graph.node.reverse()
    return m

def opset18():
    """Opset 18: Split with num_outputs, ReduceMean with axes as an input, value_floats."""
    n = Net(14)
    x = n.relu(n.conv("x", 3, 8, 3, "c1"), "r1")
    a, b = n.node("Split", [x], "split", n_out=2, axis=1, num_outputs=2)
    x = n.node("Add", [a, b], "add")
    x = n.node("ReduceMean", [x, n.const("axes", np.array([2, 3], np.int64))], "mean", keepdims=0)
    k = n.node("Constant", [], "cf", value_floats=[0.5, 2.0, 1.0, 3.0])
    x = n.node("Mul", [x, k], "scale")
    return n.model([vi("x", [1, 3, 16, 16])], [vi(x, [1, 4])], opset=18, ir_version=8)


def bad_op(op):
    """A valid model but for one node of an operator dicesim does not support."""
    n = Net(9)
    x = n.relu(n.conv("x", 3, 8, 3, "conv1"), "relu1")
    x = n.node(op, [x], "weird")
    x = n.node("Relu", [x], "relu2")
    return n.model([vi("x", [1, 3, 16, 16])], [vi(x, None)], opset=11)


def bad_channels():
    """A Conv whose weight expects 4 input channels where 3 arrive."""
    n = Net(10)
    w = n.const("w", np.zeros((8, 4, 3, 3), np.float32))
    x = n.node("Conv", ["x", w], "conv_bad", kernel_shape=[3, 3])
    return n.model([vi("x", [1, 3, 16, 16])], [vi(x, None)], opset=11)


GOOD = {
    "alexnet_c2": alexnet_c2,
    "googlenet_c2": googlenet_c2,
    "densenet_c2": densenet_c2,
    "squeezenet": squeezenet,
    "resnet_tv": resnet_tv,
    "nhwc": nhwc,
    "symbolic_hw": symbolic_hw,
    "two_outputs": two_outputs,
    "resnet_c2": resnet_c2,
    "torch11": torch11,
    "opset18": opset18,
    "light_c2": light_c2,
}

# Read by dicesim, but not valid for onnx.checker (nor ONNX Runtime).
UNCHECKED = {
    "unordered": unordered_dupnames,
}

BAD = {
    "bad_foo": lambda: bad_op("Foo"),
    "bad_lstm": lambda: bad_op("LSTM"),
    "bad_channels": bad_channels,
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, make in GOOD.items():
        m = make()
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, os.path.join(out, name + ".onnx"))
    for name, make in {**UNCHECKED, **BAD}.items():
        onnx.save(make(), os.path.join(out, name + ".onnx"))
    print(f"wrote {len(GOOD) + len(UNCHECKED)} models and {len(BAD)} invalid ones to {out}")


if __name__ == "__main__":
    main()
