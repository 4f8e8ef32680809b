"""depth_eval: evaluate Caffe-era depth estimation snapshots on OpenCV's dnn module."""

import os

# The evaluator runs its small matrix products (the cubic upsampling) on worker threads beside
# the network's forward pass: a multithreaded BLAS would only contend with it for the cores.
# Set before numpy loads, where depth_eval is imported first; an explicit setting wins.
for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
