#!/usr/bin/env python3
"""The thesis' gradient evaluation script, ported: ``python test_grad.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR``."""

import sys

from depth_eval.cli import test_grad_main

if __name__ == "__main__":
    sys.exit(test_grad_main())
