"""The Caffe wing: Caffe's file formats, its shape rules, and its translation to ONNX.

- :mod:`.proto`: the schema and the reading/writing of ``.prototxt`` and ``.caffemodel`` files;
- :mod:`.geometry`: convolution/pooling window parameters and output sizes;
- :mod:`.shapes`: blob shapes, weight shapes and the check of a snapshot's weights;
- :mod:`.onnx`: the translation to an ONNX graph (imports ``onnx``; import it only for the
  onnxruntime engine).
"""
