"""The alarm decision: each bed's rule (:mod:`.rule`) and the coordinator that runs it for the ward
(:mod:`.coordinator`: episodes, camera health, technical alarms, storage; :mod:`.retention`).

Pure of Ray, so every decision is tested in a plain test; :mod:`ward.serve.coordinator` adapts it
to Ray Serve."""
