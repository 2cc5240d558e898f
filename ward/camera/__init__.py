"""Cameras: where a source URI is opened (``sources``), read resiliently and sampled at the model
rate (``reader``), and judged online / degraded / offline (``health``). No Ray in here."""
