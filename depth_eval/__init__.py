"""depth_eval: evaluate Caffe-era depth estimation snapshots on OpenCV's dnn module."""

__version__ = "0.1.0"
