"""The wafer-scale emulation engine: NumPy numerics, placement, pipeline and virtual clock."""
