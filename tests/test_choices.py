"""The command line's choices (depth_eval.choices) are the ones the stages implement."""

import numpy as np
import pytest

from depth_eval import choices, engines
from depth_eval.cli import build_parser
from depth_eval.pictures import pngs
from depth_eval.scoring import alignments, standard_metrics
from depth_eval.settings import EngineSettings, OutputSettings
from depth_eval.scoring.score import ScoringSettings


def test_png_strategies_are_the_ones_pngs_implements():
    assert tuple(pngs.PNG_STRATEGIES) == choices.PNG_STRATEGY_NAMES
    assert choices.DEFAULT_PNG_STRATEGY in choices.PNG_STRATEGY_NAMES


@pytest.mark.parametrize("method", choices.ALIGNMENTS)
def test_every_alignment_is_implemented(method):
    gt = np.linspace(1.0, 5.0, 12, dtype=np.float32).reshape(3, 4)
    aligned, _, _ = alignments.align_prediction(gt * 2.0, gt, np.ones(gt.shape, bool), method)
    assert aligned.shape == gt.shape and np.isfinite(aligned).all()


@pytest.mark.parametrize("crop", choices.CROPS)
def test_every_crop_is_implemented(crop):
    gt = np.full((48, 64), 2.0, np.float32)
    values, _ = standard_metrics.evaluate_standard(gt, gt, crop=crop)
    assert values["abs_rel"] == 0.0


def test_settings_defaults_are_the_command_line_defaults():
    args = build_parser().parse_args(["evaluate", "in", "gt", "out", "snaps"])
    assert args.engine == EngineSettings.name == engines.DEFAULT_ENGINE
    assert args.device == EngineSettings.device and args.batch == EngineSettings.batch
    assert args.png_strategy == OutputSettings.png_strategy
    assert args.figures_max == OutputSettings.figures_max
    assert args.format == OutputSettings.table_format
    assert tuple(args.metrics) == ScoringSettings.metric_sets
    assert tuple(args.align) == ScoringSettings.alignments
    assert (args.min_depth, args.max_depth, args.crop) == (
        ScoringSettings.min_depth, ScoringSettings.max_depth, ScoringSettings.crop)
