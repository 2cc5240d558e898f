"""Evaluation arithmetic (seizure-detection metrics) and the motion-energy baseline; pure, no I/O."""

from ward.evaluation.metrics import Recording, SeizureAnnotation, clip_rmse, evaluate, event_times, summary_rows

__all__ = ["Recording", "SeizureAnnotation", "clip_rmse", "evaluate", "event_times", "summary_rows"]
