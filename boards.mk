# boards.mk - flash and chat for any board file (boards/<name>.toml); included by the
# top-level Makefile.
#   make flash BOARD=qemu-m7 [MODEL=path] [QUANT=int8|int4|mixed] [CTX=n] [TOKENIZER=path]
#       builds the firmware for the board and, with MODEL (a checkpoint or a .mote),
#       packs it for the board (refused, with by how much, if it does not fit) and
#       writes it into the board's model partition; without MODEL the partition keeps
#       what it holds. Images land in build/$(BOARD)/.
#   make chat BOARD=qemu-m7      boots the flashed board (UART on a socket) and opens
#       `mote chat` on it; SERIAL=pty puts the UART on a pty instead.
BOARD ?= qemu-m4
MODEL ?= $(DEFAULT_MODEL)
QUANT ?= int8
SERIAL ?= socket
PYTHON ?= python3

.PHONY: flash chat
flash:
	$(PYTHON) -m mote flash --board $(BOARD) $(MODEL) --quant $(QUANT) $(if $(CTX),--ctx $(CTX)) \
		$(if $(TOKENIZER),--tokenizer $(TOKENIZER))

chat: flash
	$(PYTHON) -m mote chat --board $(BOARD) --serial $(SERIAL)
