# port.mk - the build shared by the bare-metal Cortex-M ports (cmsdk, stm32f4, rp2350).
# A family's Makefile sets PORT_NAME and PORT_SRCS (its console UART and clocks) and
# includes this file:
#   make -C firmware/ports/<family> BOARD=<board>              firmware ELF + raw image
#   make -C firmware/ports/<family> BOARD=<board> calibrate    the clock-calibration image
#   make -C firmware/ports/<family> BOARD=<board> kernel-test  tests/c/test_kernels.c
#   make -C firmware/ports/<family> BOARD=<board> link         just the linker script
#   KERNELS=ref (or any set)   another kernel set than the board file's, built into
#                              build/$(BOARD)/kernels-<set>/
# Everything board-specific comes from boards/$(BOARD).toml through
# `$(PYTHON) -m mote boards $(BOARD) --make-vars` (build/$(BOARD)/board.mk), the kernel
# set too ([cpu] kernels); nothing here names a board.

BOARD ?= qemu-m4
ROOT := $(abspath ../../..)
BOARD_DIR := $(ROOT)/build/$(BOARD)
CORE := $(ROOT)/firmware/core
COMMON := $(ROOT)/firmware/ports/cortex-m
PORT := $(ROOT)/firmware/ports/$(PORT_NAME)
PYTHON ?= python3

CC := arm-none-eabi-gcc
OBJCOPY := arm-none-eabi-objcopy
SIZE := arm-none-eabi-size

# Regenerated whenever the board file changes.
$(BOARD_DIR)/board.mk: $(ROOT)/boards/$(BOARD).toml $(ROOT)/host/mote/boards/catalog.py
	@mkdir -p $(BOARD_DIR)
	$(PYTHON) -m mote boards $(BOARD) --make-vars > $@.tmp && mv $@.tmp $@
include $(BOARD_DIR)/board.mk

# The kernel set the board file names ([cpu] kernels); another set builds beside it.
# (A board.mk from before that key has none: `ref` keeps that first parse going until
# make has regenerated board.mk and restarted, before it builds anything.)
KERNELS ?= $(or $(BOARD_KERNELS),ref)
OUT := $(BOARD_DIR)$(if $(filter-out $(BOARD_KERNELS),$(KERNELS)),/kernels-$(KERNELS))
MOTE_CORE := $(CORE)
CORE_TARGET_FLAGS := $(BOARD_CPU_FLAGS)
include $(CORE)/sources.mk

OPT ?= -O3
CFLAGS := $(BOARD_CPU_FLAGS) $(OPT) -g $(CORE_CFLAGS) -ffunction-sections -fdata-sections \
          -I$(CORE) -I$(COMMON) $(BOARD_DEFINES)
LDFLAGS := $(BOARD_CPU_FLAGS) -nostartfiles --specs=nano.specs -Wl,--gc-sections \
           -Wl,--print-memory-usage
LDLIBS := -lm

BOARD_SRCS := $(COMMON)/startup.c $(COMMON)/systick.c $(PORT_SRCS)
FW_SRCS := $(CORE_SRCS) $(BOARD_SRCS) $(COMMON)/main.c
CAL_SRCS := $(BOARD_SRCS) $(COMMON)/calibrate.c $(CORE)/text.c
# tests/c/test_kernels.c on the board: the chosen set against the reference
KT_SRCS := $(filter $(CORE)/kernels_%.c,$(CORE_SRCS)) $(BOARD_SRCS) $(CORE)/text.c $(ROOT)/tests/c/test_kernels.c
HEADERS := $(wildcard $(CORE)/*.h $(COMMON)/*.h $(PORT)/*.h) $(CORE)/sources.mk $(BOARD_DIR)/board.mk

.DEFAULT_GOAL := firmware
.PHONY: firmware calibrate kernel-test link clean
firmware: $(OUT)/firmware.bin
calibrate: $(OUT)/calibrate.elf
kernel-test: $(OUT)/kernel-test.elf
link: $(OUT)/link.ld

$(OUT)/link.ld: $(COMMON)/link.ld.in $(BOARD_DIR)/board.mk
	@mkdir -p $(OUT)
	@test "$(BOARD_PORT)" = "$(PORT_NAME)" || \
	  { echo "board $(BOARD) is for the $(BOARD_PORT) port, not $(PORT_NAME)" >&2; exit 2; }
	$(CC) -E -P -x c $(BOARD_DEFINES) $< -o $@

$(OUT)/firmware.elf: $(FW_SRCS) $(HEADERS) $(OUT)/link.ld
	$(CC) $(CFLAGS) $(LDFLAGS) -T $(OUT)/link.ld -Wl,-Map,$(OUT)/firmware.map $(FW_SRCS) $(LDLIBS) -o $@
	$(SIZE) $@

$(OUT)/firmware.bin: $(OUT)/firmware.elf
	$(OBJCOPY) -O binary $< $@

$(OUT)/calibrate.elf: $(CAL_SRCS) $(HEADERS) $(OUT)/link.ld
	$(CC) $(CFLAGS) $(LDFLAGS) -T $(OUT)/link.ld $(CAL_SRCS) $(LDLIBS) -o $@

# The kernel test's buffers may outgrow a small part's RAM budget: where the board file
# gives the emulator's RAM ([qemu] ram_size), that image alone links against it.
$(OUT)/link-kernel-test.ld: $(COMMON)/link.ld.in $(BOARD_DIR)/board.mk
	@mkdir -p $(OUT)
	$(CC) -E -P -x c $(BOARD_DEFINES) $(if $(QEMU_RAM_SIZE),-URAM_SIZE -DRAM_SIZE=$(QEMU_RAM_SIZE)) $< -o $@

$(OUT)/kernel-test.elf: $(KT_SRCS) $(HEADERS) $(OUT)/link-kernel-test.ld
	$(CC) $(CFLAGS) $(LDFLAGS) -T $(OUT)/link-kernel-test.ld $(KT_SRCS) $(LDLIBS) -o $@

clean:
	rm -rf $(BOARD_DIR)
