# bindings/micropython/mote/micropython.mk - `import mote` as a user C module for the
# MicroPython ports built with make (unix, qemu, stm32, ...):
#     make -C ports/<port> USER_C_MODULES=<mote>/bindings/micropython [MOTE_KERNELS=cm]
# The core's sources and flags come from firmware/core/sources.mk, less console.c (the
# serial protocol, which needs a port's hal). MOTE_KERNELS is the kernel set (ref, the
# plain-C oracle, by default; the Mote firmware's set for the same CPU otherwise).

MOTE_MOD_DIR := $(USERMOD_DIR)
MOTE_CORE := $(abspath $(MOTE_MOD_DIR)/../../../firmware/core)
MOTE_KERNELS ?= ref
override KERNELS := $(MOTE_KERNELS)
include $(MOTE_CORE)/sources.mk
MOTE_CORE_SRCS := $(filter-out $(MOTE_CORE)/console.c,$(CORE_SRCS))

SRC_USERMOD_C += $(MOTE_MOD_DIR)/modmote.c
SRC_USERMOD_LIB_C += $(MOTE_CORE_SRCS)
CFLAGS_USERMOD += -I$(MOTE_CORE) $(KERNEL_DEFS)

# The core's files get the core's flags on top of the port's (the port's -Os gives way
# to -O2; a float port's -fsingle-precision-constant would change the core's double
# arithmetic, which the numpy reference defines).
MOTE_CORE_OPT ?= -O2
$(addprefix $(BUILD)/,$(MOTE_CORE_SRCS:.c=.o)): CFLAGS += $(CORE_CFLAGS) $(MOTE_CORE_OPT) -fno-single-precision-constant
