"""``python -m ar3d_r1`` is the ``ar3d-r1`` command, so launchers that take a module can start it:
``accelerate launch --config_file ar3d_r1/deepspeed/accelerate_zero2.yaml -m ar3d_r1 train ...``."""

from ar3d_r1.cli import main

if __name__ == "__main__":
    main()
