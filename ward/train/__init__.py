"""Training the two model families on this project's data: VSViG on dataset clips (:mod:`.vsvig`) and
Lightweight OpenPose on simulator frames (:mod:`.pose`); `ward train vsvig|pose`."""
