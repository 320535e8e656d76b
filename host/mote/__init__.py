"""Mote: tiny language models on microcontrollers, built and tested from the host."""

__version__ = "0.1.0"
