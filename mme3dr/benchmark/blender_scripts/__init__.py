"""Scripts that run *inside* an external Blender process (never imported by mme3dr itself)."""
