"""The thesis' constants (its test_depth.py / eval_depth.py and its data encoding), in one place.

Every stage that needs one of these facts imports it from here: the encodings of the ground
truth and the network's output, the grid scoring happens on, and the input convention.
"""

# Depth range in metres: ground truths and [0, 1] network outputs are depth / 10 (8-bit PNGs
# with pixel = depth_m / 10 * 255).
DEPTH_RANGE_M = 10.0
# Size every ground truth is resized to before scoring (NYU 640x480 cropped to 420x320, H x W).
GT_SHAPE = (320, 420)
# The thesis' input convention: RGB in [0, 1] times 255, minus one scalar mean (x * 255 - 127).
INPUT_RAW_SCALE = 255.0
INPUT_MEAN = 127.0
# Slope of the thesis' log-depth encoding, L = 0.179581 * ln(d / 10) + 1 (log_abs targets, --log).
LOG_ENCODING_SLOPE = 0.179581
# Floor for depths in ratios and logs (eval_depth.py: one 8-bit grey level, 1/255).
DEPTH_FLOOR = 1.0 / 255.0
