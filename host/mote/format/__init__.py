"""The .mote blob format: its one machine-readable description, the writer and the reader."""
