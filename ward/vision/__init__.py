"""Vision models and tensor pre-processing: pose (Lightweight OpenPose), patches, VSViG."""
