"""The bottom layer: contracts every other part of ward agrees on (keypoint layouts, the clip,
the messages between processes, numerics). Imports no other ward module, so anything may import it."""
