"""Helpers shared by the tests (and by benchmarks that start a small ward): not product code.

- :mod:`support.serve`: tiny deterministic weights, small ward configs, simulated beds, ``wait_for``;
- :mod:`support.api`: the production FastAPI app driven without Ray;
- :mod:`support.process`: ward processes (``serve run``, ``ward run``) and what they leave behind;
- :mod:`support.rtsp`: the loopback RTSP camera (``rtsp_server.py``, run with Debian's Python).
"""
