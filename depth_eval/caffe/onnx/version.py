"""The translation's version and format constants (no ``onnx`` import: the engine keys its
cache with them before it knows whether it must translate)."""

#: Bumped whenever the generated files for the same inputs may change (cache key component).
#: 3: initializers stored as external data beside the graph.
#: 4: the rest of Caffe's layer catalogue; InnerProduct off axis 1 as MatMul.
#: 6: MVN's top has 4 axes whatever its bottom's (Caffe's legacy accessors).
#: 7: a MAX/AVE window past the input computed as Caffe does (-FLT_MAX, 0 / 0).
#: 8: in-place LRN (across channels) and Eltwise SUM / MAX as Caffe computes them.
TRANSLATOR_VERSION = "8"
#: ONNX opset of the generated graphs (ReduceMean still takes ``axes`` as an attribute).
OPSET = 17
#: IR version written into the model; 8 is what opset 17 was released with, so older
#: onnxruntime builds (>= 1.16) load the file too.
IR_VERSION = 8
#: Name of the symbolic batch dimension when ``batch=None``.
BATCH_DIM = "N"
