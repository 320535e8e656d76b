# pio_link.py - PlatformIO pre-script of the Cortex-M environments in platformio.ini:
# makes the environment's linker script (build/<board>/link.ld) with the same make rule
# as `make flash`, from the board file, so PlatformIO links what make links. Needs
# `mote` importable by the python3 on PATH (pip install -e . in this checkout).
import subprocess

Import("env")  # noqa: F821 (PlatformIO's SCons environment)

board = env["PIOENV"]  # noqa: F821
port = env.GetProjectOption("custom_mote_port")  # noqa: F821
subprocess.run(["make", "-s", "-C", f"firmware/ports/{port}", f"BOARD={board}", "link"], check=True)
