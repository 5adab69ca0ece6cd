"""AR3D-R1: the Hi-GRPO trainer for the reference model (work in progress; see the issues)."""
