"""Click-Gaussian backend: everything that is not Blender. The format core imports numpy only."""
