"""The names of the convention options and their fixed choices, without numpy (``--help``
reads them): :mod:`depth_eval.inputs.conventions` is what they mean."""

# Output kinds (--output-kind): depth M * o, the thesis' log encoding, inverse depth M / o.
OUTPUT_KINDS = ("depth", "log", "inverse")
# A snapshot's sidecar: <caffemodel stem> + this suffix, beside the caffemodel.
SIDECAR_SUFFIX = ".depth_eval.toml"
# The key of a snapshot's effective convention in its results.json entry and engine facts.
CONVENTION_FACT = "convention"
# Channels of every colour input the evaluation feeds (1 x 3 x H x W).
COLOR_CHANNELS = 3

# The options, by their long names (command line ``--NAME``, sidecar key ``NAME``).
CHANNEL_SWAP, RAW_SCALE, MEAN_VALUES, MEAN_FILE = "channel-swap", "raw-scale", "mean-values", "mean-file"
INPUT_SCALE, TRANSFORM_FROM = "input-scale", "transform-from"
OUTPUT_SCALE, OUTPUT_KIND = "output-scale", "output-kind"
INPUT_OPTION_NAMES = (CHANNEL_SWAP, RAW_SCALE, MEAN_VALUES, MEAN_FILE, INPUT_SCALE, TRANSFORM_FROM)
OUTPUT_OPTION_NAMES = (OUTPUT_SCALE, OUTPUT_KIND)
OPTION_NAMES = INPUT_OPTION_NAMES + OUTPUT_OPTION_NAMES


def parse_number_list(text: str) -> list:
    """``"104,117,123"`` -> ``[104, 117, 123]`` (ints where they are, for channel-swap)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(int(part))
        except ValueError:
            try:
                out.append(float(part))
            except ValueError:
                raise ValueError(f"{text!r}: expected a comma list of numbers") from None
    return out
