"""Training data: clips for VSViG from annotated videos or simulator output, made by the one bed
pipeline (:mod:`ward.pipeline`) and split by patient (`ward dataset build`)."""
