"""Boards: board files, flash images, firmware builds, QEMU and the runners that drive a board."""
