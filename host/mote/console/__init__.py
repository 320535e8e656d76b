"""The host side of the serial console protocol (docs/serial-protocol.md)."""
