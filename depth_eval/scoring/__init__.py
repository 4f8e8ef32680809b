"""Pure numbers over arrays in metres: the thesis metrics, the standard metrics of today's
evaluators, the alignments before scoring, metric keys, the gradient metrics and the upsampling."""
