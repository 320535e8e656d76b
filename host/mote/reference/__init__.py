"""The numpy reference forward pass: the firmware's arithmetic, step for step (the oracle)."""
