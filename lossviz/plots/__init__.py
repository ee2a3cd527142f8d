"""The plots layer: pure functions, data in, ``matplotlib.figure.Figure`` out, no pyplot state."""
