"""Every choice and default of the command line, stated once.

The stage that acts on an option owns its meaning (the alignments, the crops, the encodings, the
PNG strategies, the pixel limit); the values are here so that the command line, the settings
objects and those stages read the same tuple, and ``--help`` imports neither numpy nor OpenCV.
"""

# Metric sets: the thesis' ten metrics, and the standard ones today's evaluators print.
METRIC_SETS = ("thesis", "standard")
DEFAULT_METRIC_SETS = ("thesis",)
# Alignments before scoring: none, monodepth2's median scaling, MiDaS' least squares, the
# thesis' MVN fit (depth_eval.scoring.alignments).
ALIGNMENTS = ("none", "median", "lsq", "mvn")
DEFAULT_ALIGNMENTS = ("none",)
# Crops of the standard metrics (depth_eval.scoring.standard_metrics: the Eigen NYU crop).
CROPS = ("none", "eigen")
DEFAULT_CROP = "none"
# BTS eval_with_pngs.py --min_depth_eval default for NYU (monodepth2 uses the same 1e-3 floor).
DEFAULT_MIN_DEPTH_M = 1e-3
# BTS eval_with_pngs.py --max_depth_eval for NYU Depth v2 (the sensor range of every NYU paper).
DEFAULT_MAX_DEPTH_M = 10.0
# Ground-truth storage (depth_eval.inputs.gt_encodings).
GT_ENCODINGS = ("auto", "thesis", "mm", "npy", "float")
DEFAULT_GT_ENCODING = "auto"
# PNG zlib strategies (depth_eval.pictures.pngs.PNG_STRATEGIES): same pixels either way.
PNG_STRATEGY_NAMES = ("default", "rle")
DEFAULT_PNG_STRATEGY = "rle"
# Images with more pixels are refused before decoding (the reason: depth_eval.inputs.limits).
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# Devices an engine may be asked for (each engine says which it supports).
DEVICES = ("cpu", "cuda")
DEFAULT_DEVICE = "cpu"
# Images per forward pass: one, as the original.
DEFAULT_BATCH = 1
# Images that get a --figures figure, chosen evenly.
DEFAULT_FIGURES_MAX = 8
# Table formats of what a run prints (depth_eval.report.tables).
TABLE_FORMATS = ("text", "markdown")
DEFAULT_TABLE_FORMAT = "text"
# Confidence intervals of the means and changes (depth_eval.scoring.uncertainty): their level,
# and the bootstrap interval (scipy.stats.bootstrap's names: bias-corrected and accelerated,
# percentile).
DEFAULT_CONFIDENCE = 0.95
INTERVAL_METHODS = ("BCa", "percentile")
DEFAULT_INTERVAL_METHOD = "BCa"
