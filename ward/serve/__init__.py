"""The Ray adapters: Serve deployments (models, coordinator, API), the camera actors and their
supervisor, the `ward run` launcher. Only adapts the pure layers below to Ray; nothing imports it."""

# Every ward process (API, coordinator, camera actors, model replicas) imports this package: scrub
# passwords, tokens, DB URL passwords and frames from all of its log records (ward.security).
from ward.security import install_log_redaction as _install_log_redaction

_install_log_redaction()
