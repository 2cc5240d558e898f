"""ward: real-time multi-bed video seizure monitoring with VSViG on Ray."""

__version__ = "0.1.0"
