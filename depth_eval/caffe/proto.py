"""Caffe's network and weight messages, for reading deploy ``.prototxt`` and ``.caffemodel`` files.

The schema is the subset of Caffe's ``caffe.proto`` that deploy networks of the thesis era use,
declared here with the field numbers Caffe assigned, and built at import time with the
``protobuf`` library (no ``protoc`` step, no generated code).  Fields this subset does not
declare are skipped when parsing text and kept as unknown fields when parsing binary files, so a
training prototxt or a snapshot written by a newer Caffe still loads.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError

from depth_eval.inputs import limits
from depth_eval.errors import CaffeFormatError

_PACKAGE = "caffe"
_F = descriptor_pb2.FieldDescriptorProto

# (name, number, label, type, type_name_or_None, default_or_None, packed)
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {
    "string": _F.TYPE_STRING, "bool": _F.TYPE_BOOL, "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE, "int32": _F.TYPE_INT32, "uint32": _F.TYPE_UINT32,
    "int64": _F.TYPE_INT64,
}

# Enums: name -> [(value name, number)].  Enum value names share their enclosing scope in
# protobuf, so enums whose values clash (MAX) are nested in their message as Caffe does
# (_NESTED_ENUMS); the others are declared at package level, which is enough for parsing.
_ENUMS = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
    "Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    "PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
    "RoundMode": [("CEIL", 0), ("FLOOR", 1)],
    "NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)],
    "EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)],
    "DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
    "ReductionOp": [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)],
    "V1LayerType": [
        ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2),
        ("CONCAT", 3), ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5),
        ("DECONVOLUTION", 39), ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7),
        ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10),
        ("HINGE_LOSS", 28), ("IM2COL", 11), ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13),
        ("INNER_PRODUCT", 14), ("LRN", 15), ("MEMORY_DATA", 29),
        ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17), ("POWER", 26),
        ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27), ("SILENCE", 36),
        ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33), ("TANH", 23),
        ("WINDOW_DATA", 24), ("THRESHOLD", 31),
    ],
}

_NESTED_ENUMS = {"PoolMethod": "PoolingParameter", "EltwiseOp": "EltwiseParameter",
                 "ReductionOp": "ReductionParameter"}

# V1 layer type enum -> the type string of the current ``layer`` form (Caffe's UpgradeV1LayerType).
V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split",
    "SLICE": "Slice", "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def _f(name, number, type_, label=_OPT, default=None, packed=False):
    return (name, number, label, type_, default, packed)


# Parameter messages shared by the current and the V1 layer form.
_MESSAGES = {
    "BlobShape": [_f("dim", 1, "int64", _REP, packed=True)],
    "BlobProto": [
        _f("shape", 7, "BlobShape"),
        _f("data", 5, "float", _REP, packed=True),
        _f("diff", 6, "float", _REP, packed=True),
        _f("double_data", 8, "double", _REP, packed=True),
        _f("double_diff", 9, "double", _REP, packed=True),
        _f("num", 1, "int32", default="0"),
        _f("channels", 2, "int32", default="0"),
        _f("height", 3, "int32", default="0"),
        _f("width", 4, "int32", default="0"),
    ],
    "FillerParameter": [
        _f("type", 1, "string", default="constant"),
        _f("value", 2, "float", default="0"),
        _f("min", 3, "float", default="0"),
        _f("max", 4, "float", default="1"),
        _f("mean", 5, "float", default="0"),
        _f("std", 6, "float", default="1"),
        _f("sparse", 7, "int32", default="-1"),
    ],
    "NetState": [
        _f("phase", 1, "Phase", default="TEST"),
        _f("level", 2, "int32", default="0"),
        _f("stage", 3, "string", _REP),
    ],
    "NetStateRule": [
        _f("phase", 1, "Phase"),
        _f("min_level", 2, "int32"),
        _f("max_level", 3, "int32"),
        _f("stage", 4, "string", _REP),
        _f("not_stage", 5, "string", _REP),
    ],
    "ParamSpec": [
        _f("name", 1, "string"),
        _f("share_mode", 2, "DimCheckMode"),
        _f("lr_mult", 3, "float", default="1"),
        _f("decay_mult", 4, "float", default="1"),
    ],
    "ConvolutionParameter": [
        _f("num_output", 1, "uint32"),
        _f("bias_term", 2, "bool", default="true"),
        _f("pad", 3, "uint32", _REP),
        _f("kernel_size", 4, "uint32", _REP),
        _f("stride", 6, "uint32", _REP),
        _f("dilation", 18, "uint32", _REP),
        _f("pad_h", 9, "uint32", default="0"),
        _f("pad_w", 10, "uint32", default="0"),
        _f("kernel_h", 11, "uint32"),
        _f("kernel_w", 12, "uint32"),
        _f("stride_h", 13, "uint32"),
        _f("stride_w", 14, "uint32"),
        _f("group", 5, "uint32", default="1"),
        _f("weight_filler", 7, "FillerParameter"),
        _f("bias_filler", 8, "FillerParameter"),
        _f("engine", 15, "Engine", default="DEFAULT"),
        _f("axis", 16, "int32", default="1"),
        _f("force_nd_im2col", 17, "bool", default="false"),
    ],
    "InnerProductParameter": [
        _f("num_output", 1, "uint32"),
        _f("bias_term", 2, "bool", default="true"),
        _f("weight_filler", 3, "FillerParameter"),
        _f("bias_filler", 4, "FillerParameter"),
        _f("axis", 5, "int32", default="1"),
        _f("transpose", 6, "bool", default="false"),
    ],
    "InputParameter": [_f("shape", 1, "BlobShape", _REP)],
    "LRNParameter": [
        _f("local_size", 1, "uint32", default="5"),
        _f("alpha", 2, "float", default="1"),
        _f("beta", 3, "float", default="0.75"),
        _f("norm_region", 4, "NormRegion", default="ACROSS_CHANNELS"),
        _f("k", 5, "float", default="1"),
        _f("engine", 6, "Engine", default="DEFAULT"),
    ],
    "MVNParameter": [
        _f("normalize_variance", 1, "bool", default="true"),
        _f("across_channels", 2, "bool", default="false"),
        _f("eps", 3, "float", default="1e-09"),
    ],
    "PoolingParameter": [
        _f("pool", 1, "PoolMethod", default="MAX"),
        _f("pad", 4, "uint32", default="0"),
        _f("pad_h", 9, "uint32", default="0"),
        _f("pad_w", 10, "uint32", default="0"),
        _f("kernel_size", 2, "uint32"),
        _f("kernel_h", 5, "uint32"),
        _f("kernel_w", 6, "uint32"),
        _f("stride", 3, "uint32", default="1"),
        _f("stride_h", 7, "uint32"),
        _f("stride_w", 8, "uint32"),
        _f("engine", 11, "Engine", default="DEFAULT"),
        _f("global_pooling", 12, "bool", default="false"),
        _f("round_mode", 13, "RoundMode", default="CEIL"),
    ],
    "PowerParameter": [
        _f("power", 1, "float", default="1"),
        _f("scale", 2, "float", default="1"),
        _f("shift", 3, "float", default="0"),
    ],
    "ReLUParameter": [
        _f("negative_slope", 1, "float", default="0"),
        _f("engine", 2, "Engine", default="DEFAULT"),
    ],
    "ReshapeParameter": [
        _f("shape", 1, "BlobShape"),
        _f("axis", 2, "int32", default="0"),
        _f("num_axes", 3, "int32", default="-1"),
    ],
    "ConcatParameter": [
        _f("axis", 2, "int32", default="1"),
        _f("concat_dim", 1, "uint32", default="1"),
    ],
    "DropoutParameter": [_f("dropout_ratio", 1, "float", default="0.5")],
    "EltwiseParameter": [
        _f("operation", 1, "EltwiseOp", default="SUM"),
        _f("coeff", 2, "float", _REP),
        _f("stable_prod_grad", 3, "bool", default="true"),
    ],
    "FlattenParameter": [
        _f("axis", 1, "int32", default="1"),
        _f("end_axis", 2, "int32", default="-1"),
    ],
    "SoftmaxParameter": [
        _f("engine", 1, "Engine", default="DEFAULT"),
        _f("axis", 2, "int32", default="1"),
    ],
    "ArgMaxParameter": [
        _f("out_max_val", 1, "bool", default="false"),
        _f("top_k", 2, "uint32", default="1"),
        _f("axis", 3, "int32"),
    ],
    "BatchNormParameter": [
        _f("use_global_stats", 1, "bool"),
        _f("moving_average_fraction", 2, "float", default="0.999"),
        _f("eps", 3, "float", default="1e-05"),
    ],
    "BiasParameter": [
        _f("axis", 1, "int32", default="1"),
        _f("num_axes", 2, "int32", default="1"),
        _f("filler", 3, "FillerParameter"),
    ],
    "CropParameter": [
        _f("axis", 1, "int32", default="2"),
        _f("offset", 2, "uint32", _REP),
    ],
    "ELUParameter": [_f("alpha", 1, "float", default="1")],
    "ExpParameter": [
        _f("base", 1, "float", default="-1"),
        _f("scale", 2, "float", default="1"),
        _f("shift", 3, "float", default="0"),
    ],
    "LogParameter": [
        _f("base", 1, "float", default="-1"),
        _f("scale", 2, "float", default="1"),
        _f("shift", 3, "float", default="0"),
    ],
    "ParameterParameter": [_f("shape", 1, "BlobShape")],
    "PReLUParameter": [
        _f("filler", 1, "FillerParameter"),
        _f("channel_shared", 2, "bool", default="false"),
    ],
    "ReductionParameter": [
        _f("operation", 1, "ReductionOp", default="SUM"),
        _f("axis", 2, "int32", default="0"),
        _f("coeff", 3, "float", default="1"),
    ],
    "ScaleParameter": [
        _f("axis", 1, "int32", default="1"),
        _f("num_axes", 2, "int32", default="1"),
        _f("filler", 3, "FillerParameter"),
        _f("bias_term", 4, "bool", default="false"),
        _f("bias_filler", 5, "FillerParameter"),
    ],
    "SliceParameter": [
        _f("axis", 3, "int32", default="1"),
        _f("slice_point", 2, "uint32", _REP),
        _f("slice_dim", 1, "uint32", default="1"),
    ],
    # Caffe nests its own copy of the pooling methods here, with the same values.
    "SPPParameter": [
        _f("pyramid_height", 1, "uint32"),
        _f("pool", 2, "PoolMethod", default="MAX"),
        _f("engine", 6, "Engine", default="DEFAULT"),
    ],
    "ThresholdParameter": [_f("threshold", 1, "float", default="0")],
    "TransformationParameter": [
        _f("scale", 1, "float", default="1"),
        _f("mirror", 2, "bool", default="false"),
        _f("crop_size", 3, "uint32", default="0"),
        _f("mean_file", 4, "string"),
        _f("mean_value", 5, "float", _REP),
        _f("force_color", 6, "bool", default="false"),
        _f("force_gray", 7, "bool", default="false"),
    ],
    "TileParameter": [
        _f("axis", 1, "int32", default="1"),
        _f("tiles", 2, "int32"),
    ],
}

_LAYER_PARAMS = [  # (field name, number in LayerParameter, number in V1LayerParameter or None)
    ("argmax_param", 103, 23),
    ("batch_norm_param", 139, None),
    ("bias_param", 141, None),
    ("concat_param", 104, 9),
    ("convolution_param", 106, 10),
    ("crop_param", 144, None),
    ("dropout_param", 108, 12),
    ("eltwise_param", 110, 24),
    ("elu_param", 140, None),
    ("exp_param", 111, 41),
    ("flatten_param", 135, None),
    ("inner_product_param", 117, 17),
    ("input_param", 143, None),
    ("log_param", 134, None),
    ("lrn_param", 118, 18),
    ("mvn_param", 120, 34),
    ("parameter_param", 145, None),
    ("pooling_param", 121, 19),
    ("power_param", 122, 21),
    ("prelu_param", 131, None),
    ("reduction_param", 136, None),
    ("relu_param", 123, 30),
    ("reshape_param", 133, None),
    ("scale_param", 142, None),
    ("slice_param", 126, 31),
    ("softmax_param", 125, 39),
    ("spp_param", 132, None),
    ("threshold_param", 128, 25),
    ("tile_param", 138, None),
    ("transform_param", 100, 36),  # a data layer's preprocessing (train_val prototxts)
]

# Parameter message names whose capitalisation is not the field name's.
_TYPE_NAMES = {"argmax_param": "ArgMaxParameter", "elu_param": "ELUParameter",
               "lrn_param": "LRNParameter", "mvn_param": "MVNParameter",
               "prelu_param": "PReLUParameter", "relu_param": "ReLUParameter",
               "spp_param": "SPPParameter", "transform_param": "TransformationParameter"}


def _type_of(field_name):
    return _TYPE_NAMES.get(field_name) or "".join(
        part.capitalize() for part in field_name.split("_")[:-1]) + "Parameter"


_MESSAGES["LayerParameter"] = [
    _f("name", 1, "string"),
    _f("type", 2, "string"),
    _f("bottom", 3, "string", _REP),
    _f("top", 4, "string", _REP),
    _f("phase", 10, "Phase"),
    _f("loss_weight", 5, "float", _REP),
    _f("param", 6, "ParamSpec", _REP),
    _f("blobs", 7, "BlobProto", _REP),
    _f("propagate_down", 11, "bool", _REP),
    _f("include", 8, "NetStateRule", _REP),
    _f("exclude", 9, "NetStateRule", _REP),
] + [_f(name, number, _type_of(name)) for name, number, _ in _LAYER_PARAMS]

# Data layers of the V1 form kept their preprocessing in their own parameters (the fields Caffe's
# UpgradeNetDataTransformation moves into transform_param); only those fields are declared.
_V1_DATA_PARAMS = {"data_param": (11, "DATA"), "image_data_param": (15, "IMAGE_DATA"),
                   "window_data_param": (20, "WINDOW_DATA")}
_V1_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
for _name in ("DataParameter", "ImageDataParameter", "WindowDataParameter"):
    _MESSAGES[_name] = [_f("scale", 2, "float", default="1"), _f("mean_file", 3, "string"),
                        _f("crop_size", 5, "uint32", default="0"),
                        _f("mirror", 6, "bool", default="false")]

_MESSAGES["V1LayerParameter"] = [
    _f("bottom", 2, "string", _REP),
    _f("top", 3, "string", _REP),
    _f("name", 4, "string"),
    _f("include", 32, "NetStateRule", _REP),
    _f("exclude", 33, "NetStateRule", _REP),
    _f("type", 5, "V1LayerType"),
    _f("blobs", 6, "BlobProto", _REP),
    _f("param", 1001, "string", _REP),
    _f("blobs_lr", 7, "float", _REP),
    _f("weight_decay", 8, "float", _REP),
    _f("loss_weight", 35, "float", _REP),
] + [_f(name, v1, _type_of(name)) for name, _, v1 in _LAYER_PARAMS if v1 is not None] + [
    _f(name, number, _type_of(name)) for name, (number, _) in _V1_DATA_PARAMS.items()]

_MESSAGES["NetParameter"] = [
    _f("name", 1, "string"),
    _f("input", 3, "string", _REP),
    _f("input_shape", 8, "BlobShape", _REP),
    _f("input_dim", 4, "int32", _REP),
    _f("force_backward", 5, "bool", default="false"),
    _f("state", 6, "NetState"),
    _f("debug_info", 7, "bool", default="false"),
    _f("layer", 100, "LayerParameter", _REP),
    _f("layers", 2, "V1LayerParameter", _REP),
]


def _build_classes():
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="depth_eval_caffe.proto", package=_PACKAGE, syntax="proto2")
    messages = {}
    for message_name, fields in _MESSAGES.items():
        message = messages[message_name] = file_proto.message_type.add(name=message_name)
        for name, number, label, type_, default, packed in fields:
            field = message.field.add(name=name, number=number, label=label)
            if type_ in _TYPES:
                field.type = _TYPES[type_]
            else:
                field.type = _F.TYPE_ENUM if type_ in _ENUMS else _F.TYPE_MESSAGE
                parent = _NESTED_ENUMS.get(type_)
                field.type_name = f".{_PACKAGE}.{parent + '.' if parent else ''}{type_}"
            if default is not None:
                field.default_value = default
            if packed:
                field.options.packed = True
    for enum_name, values in _ENUMS.items():
        parent = _NESTED_ENUMS.get(enum_name)
        enum = (messages[parent].enum_type if parent else file_proto.enum_type).add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES}


_CLASSES = _build_classes()
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
BlobProto = _CLASSES["BlobProto"]
BlobShape = _CLASSES["BlobShape"]


def read_prototxt(path: str | Path) -> "NetParameter":
    """Parse a network definition in protobuf text format.

    Parameters
    ----------
    path : str or Path
        The ``.prototxt`` file.

    Returns
    -------
    NetParameter
        The parsed network; a legacy ``layers`` (V1) definition is upgraded to ``layer``.

    Raises
    ------
    CaffeFormatError
        If the file is not valid text format for a Caffe network.
    OSError
        If it cannot be read, or is not a regular file (:mod:`depth_eval.inputs.limits`).
    """
    path = Path(path)
    try:
        text = limits.read_regular(path).decode("utf-8")  # a FIFO would block read_text
    except UnicodeDecodeError as error:
        raise CaffeFormatError(f"{path}: not a text file ({error.reason})") from None
    net = NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise CaffeFormatError(f"{path}: prototxt does not parse: {error}") from None
    return upgrade_v1(net)


def read_caffemodel(path: str | Path) -> "NetParameter":
    """Parse trained weights in protobuf binary format (upgrading the V1 ``layers`` form)."""
    path = Path(path)
    net = NetParameter()
    try:
        net.ParseFromString(limits.read_regular(path))
    except DecodeError as error:
        raise CaffeFormatError(f"{path}: caffemodel is corrupt or truncated ({error})") from None
    return upgrade_v1(net)


def write_caffemodel(net: "NetParameter", path: str | Path) -> None:
    """Write ``net`` as a binary ``.caffemodel``."""
    Path(path).write_bytes(net.SerializeToString())


def upgrade_v1(net: "NetParameter") -> "NetParameter":
    """Move legacy ``layers`` (V1LayerParameter) entries to ``layer``, as Caffe's upgrade does."""
    if not net.layers:
        return net
    if net.layer:
        raise CaffeFormatError("network mixes the legacy 'layers' form with 'layer'")
    param_names = [name for name, _, v1 in _LAYER_PARAMS if v1 is not None]
    for old in net.layers:
        layer = net.layer.add(name=old.name, bottom=old.bottom, top=old.top)
        layer.type = V1_TYPE_NAMES.get(
            _CLASSES["V1LayerParameter"].DESCRIPTOR.fields_by_name["type"].enum_type
            .values_by_number[old.type].name, "") if old.HasField("type") else ""
        layer.blobs.extend(old.blobs)
        layer.include.extend(old.include)
        layer.exclude.extend(old.exclude)
        layer.loss_weight.extend(old.loss_weight)
        for name in param_names:
            if old.HasField(name):
                getattr(layer, name).CopyFrom(getattr(old, name))
        _upgrade_data_transformation(old, layer)
    del net.layers[:]
    return net


def _upgrade_data_transformation(old, layer) -> None:
    """A V1 data layer's own scale / mean_file / crop_size / mirror into its transform_param
    (Caffe's UpgradeNetDataTransformation: for DATA, IMAGE_DATA and WINDOW_DATA layers)."""
    type_name = (_CLASSES["V1LayerParameter"].DESCRIPTOR.fields_by_name["type"].enum_type
                 .values_by_number[old.type].name) if old.HasField("type") else ""
    for name, (_, v1_type) in _V1_DATA_PARAMS.items():
        if type_name != v1_type or not old.HasField(name):
            continue
        legacy = getattr(old, name)
        for field in _V1_TRANSFORM_FIELDS:
            if legacy.HasField(field):
                setattr(layer.transform_param, field, getattr(legacy, field))


def blob_shape(blob: "BlobProto") -> tuple[int, ...]:
    """The shape of a stored blob, as Caffe's ``Blob::FromProto`` reads it: the ``shape`` field,
    else the legacy num/channels/height/width if any of them is set, else 0 axes (one value:
    Caffe writes no shape at all for the scalar of ``PReLU { channel_shared }``)."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    if any(blob.HasField(axis) for axis in _LEGACY_AXES):
        return tuple(getattr(blob, axis) for axis in _LEGACY_AXES)
    return ()


# BlobProto's pre-``shape`` dimensions (caffe.proto fields 1-4).
_LEGACY_AXES = ("num", "channels", "height", "width")


# ----------------------------------------------------------------------------------------------
# Caffe's layer filtering by phase (a training prototxt's data layers are TRAIN-only).

# Caffe's Phase value TEST, the phase a NetState without one is in for deployment.
PHASE_TEST = _PHASE_TEST = 1


def _rule_matches(rule, phase: int, level: int, stages: set[str]) -> bool:
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(stage not in stages for stage in rule.stage):
        return False
    if any(stage in stages for stage in rule.not_stage):
        return False
    return True


def included_layers(net: "NetParameter") -> list:
    """The layers Caffe builds for ``net``'s state (TEST when it names no phase), as its
    ``Net::FilterNet`` keeps them: those an ``include`` rule matches, or with no ``include``,
    those no ``exclude`` rule matches.  Shape inference and the ONNX translation both use it."""
    state = net.state
    phase = state.phase if state.HasField("phase") else _PHASE_TEST
    level, stages = state.level, set(state.stage)
    kept = []
    for layer in net.layer:
        if layer.include:
            keep = any(_rule_matches(r, phase, level, stages) for r in layer.include)
        else:
            keep = not any(_rule_matches(r, phase, level, stages) for r in layer.exclude)
        if keep:
            kept.append(layer)
    return kept
