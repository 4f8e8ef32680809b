#!/usr/bin/env python3
"""The thesis' evaluation script, ported: ``python test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``."""

import sys

from depth_eval.cli import test_depth_main

if __name__ == "__main__":
    sys.exit(test_depth_main())
