"""Evaluation arithmetic (seizure-detection metrics) and the motion-energy baseline; pure, no I/O."""

from ward.evaluation.baseline import (BaselineConfig, MotionBaseline, band_power, scores_from_frames,
                                      scores_from_keypoints)
from ward.evaluation.metrics import Recording, SeizureAnnotation, clip_rmse, evaluate, event_times, summary_rows

__all__ = ["BaselineConfig", "MotionBaseline", "Recording", "SeizureAnnotation", "band_power", "clip_rmse",
           "evaluate", "event_times", "scores_from_frames", "scores_from_keypoints", "summary_rows"]
