# boards.mk - flash and chat for any board file (boards/<name>.toml); included by the
# top-level Makefile.
#   make flash BOARD=qemu-m7 [MODEL=path] [QUANT=int8|int4|mixed] [CTX=n] [TOKENIZER=path]
#       builds the firmware for the board and, with MODEL (a checkpoint or a .mote),
#       packs it for the board (refused, with by how much, if it does not fit) and
#       writes it into the board's model partition; without MODEL the partition keeps
#       what it holds. Images land in build/$(BOARD)/.
#       A real board is written too with VIA=<method> (its board file's [flasher]:
#       dfu-util or st-flash for stm32f405, uf2 or picotool for pico2, esptool for
#       esp32s3; the default for a board that is not emulated is its first method);
#       PORT=/dev/ttyACM0 (esptool), DRIVE=/media/you/RP2350 (uf2), MODEL_ONLY=1.
#   make chat BOARD=qemu-m7      boots the flashed board (UART on a socket) and opens
#       `mote chat` on it; SERIAL=pty puts the UART on a pty instead. With PORT, chats
#       with the real board on that port instead (make chat PORT=/dev/ttyACM0).
BOARD ?= qemu-m4
MODEL ?= $(DEFAULT_MODEL)
QUANT ?= int8
SERIAL ?= socket
PYTHON ?= python3

.PHONY: flash chat
flash:
	$(PYTHON) -m mote flash --board $(BOARD) $(MODEL) --quant $(QUANT) $(if $(CTX),--ctx $(CTX)) \
		$(if $(TOKENIZER),--tokenizer $(TOKENIZER)) $(if $(VIA),--via $(VIA)) \
		$(if $(PORT),--port $(PORT)) $(if $(DRIVE),--drive $(DRIVE)) $(if $(MODEL_ONLY),--model-only)

# chatting with a real board does not flash it again (make flash VIA=... did)
chat: $(if $(PORT),,flash)
	$(PYTHON) -m mote chat $(if $(PORT),--port $(PORT),--board $(BOARD) --serial $(SERIAL))
