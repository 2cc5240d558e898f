"""ward.sim: simulated bed cameras with patients, behaviours, seizures and ground truth.

Public entry points: Scenario / parse_sim_uri / load_scenario / random_scenario (what to simulate),
SimCamera (frames, keypoints, labels), open_capture (a cv2.VideoCapture-like live source),
render_to_files (video + ground truth on disk).
"""

from ward.sim.scenario import Scenario, load_scenario, parse_sim_uri, random_scenario  # noqa: F401
from ward.sim.render import SimCamera, SimCapture, open_capture  # noqa: F401
from ward.sim.output import contact_sheet, render_to_files  # noqa: F401
