"""Deploy-definition reading: input, output detection, blob writers, weight checks."""

import pytest
from google.protobuf import text_format

from depth_eval.caffe import proto as caffe_proto, shapes as caffe_shapes
from depth_eval.engines.base import ANY_OUTPUT, blob_writers, describe_network, unconnected_outputs
from depth_eval.errors import ShapeError, SnapshotError

INPUT = 'layer { name: "data" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 10 } } }\n'


def net(text: str):
    parsed = caffe_proto.NetParameter()
    text_format.Parse(text, parsed)
    return parsed


def conv(name, bottom, top, outputs=1, extra=""):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
            f'convolution_param {{ num_output: {outputs} kernel_size: 3 pad: 1 {extra} }} }}\n')


def relu(name, blob):
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def test_preferred_output_names_win():
    definition = net(INPUT + conv("c1", "X", "depth") + conv("c2", "depth", "depth-refine_")
                     + 'layer { name: "p" type: "Power" bottom: "depth-refine_" top: "depth-refine" }')
    info = describe_network(definition)
    assert (info.input_name, info.input_shape) == ("X", (1, 3, 8, 10))
    assert (info.output_blob, info.output_layer) == ("depth-refine", "p")


def test_single_one_channel_unconnected_output_is_found():
    definition = net(INPUT + conv("c1", "X", "feat", 4) + relu("r1", "feat")
                     + conv("head", "feat", "pred", 1) + conv("aux", "feat", "grad", 2))
    assert unconnected_outputs(definition) == ["pred", "grad"]
    assert blob_writers(definition)["feat"] == "r1"  # in-place ReLU writes it last
    assert describe_network(definition).output_blob == "pred"


def test_ambiguous_or_multichannel_output_needs_output_blob():
    definition = net(INPUT + conv("a", "X", "one", 1) + conv("b", "X", "two", 1))
    with pytest.raises(SnapshotError, match="--output-blob"):
        describe_network(definition)
    assert describe_network(definition, "two").output_blob == "two"
    with pytest.raises(SnapshotError, match="no blob named 'nope'"):
        describe_network(definition, "nope")
    grads = net(INPUT + conv("g", "X", "gradient", 2))
    with pytest.raises(SnapshotError, match="N x 1 x h x w"):
        describe_network(grads, "gradient")
    assert describe_network(grads, "gradient", rule=ANY_OUTPUT).output_blob == "gradient"


def test_net_level_input_dim_and_channel_check():
    legacy = net('input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 6\n'
                 + conv("c", "data", "depth"))
    assert describe_network(legacy).input_shape == (1, 3, 4, 6)
    grey = net('input: "X" input_shape { dim: 1 dim: 1 dim: 4 dim: 6 }\n' + conv("c", "X", "depth"))
    with pytest.raises(SnapshotError, match="colour images"):
        describe_network(grey)


def test_check_weights_names_the_layer_and_both_shapes():
    definition = net(INPUT + conv("c1", "X", "depth", 2, "group: 1"))
    weights = caffe_proto.NetParameter()
    layer = weights.layer.add(name="c1", type="Convolution")
    for shape in ((2, 3, 3, 3), (2,)):
        blob = layer.blobs.add()
        blob.shape.dim.extend(shape)
    caffe_shapes.check_weights(definition, weights)
    layer.blobs[0].shape.dim[1] = 1
    with pytest.raises(ShapeError, match=r"'c1' weights are 2x1x3x3 \+ 2, the "
                                                       r"prototxt needs 2x3x3x3 \+ 2"):
        caffe_shapes.check_weights(definition, weights)
    del weights.layer[:]
    with pytest.raises(ShapeError, match="'c1' has no weights"):
        caffe_shapes.check_weights(definition, weights)
