# bindings/micropython/mote/micropython.mk - `import mote` as a user C module for the
# MicroPython ports built with make (unix, qemu, stm32, ...):
#     make -C ports/<port> USER_C_MODULES=<mote>/bindings/micropython [MOTE_KERNELS=cm]
# MOTE_KERNELS is the kernel set: ref (the plain-C oracle) by default, or the set the
# Mote firmware uses on the same CPU (core.mk, docs/micropython.md).

MOTE_MOD_DIR := $(USERMOD_DIR)
include $(MOTE_MOD_DIR)/core.mk

SRC_USERMOD_C += $(MOTE_MOD_DIR)/modmote.c
SRC_USERMOD_LIB_C += $(MOTE_CORE_SRCS)
CFLAGS_USERMOD += -I$(MOTE_CORE) $(KERNEL_DEFS)

# The core's files get the core's flags after the port's; a float port's
# -fsingle-precision-constant would change the core's double arithmetic, which the
# numpy reference defines.
$(addprefix $(BUILD)/,$(MOTE_CORE_SRCS:.c=.o)): CFLAGS += $(CORE_CFLAGS) $(MOTE_CORE_OPT) -fno-single-precision-constant

ifneq ($(filter float single,$(MICROPY_FLOAT_IMPL)),)
MOTE_LIBM_SRCS := $(addprefix lib/libm_dbl/,$(MOTE_LIBM_DBL) scalbn.c)
SRC_USERMOD_LIB_C += $(MOTE_LIBM_SRCS)
$(addprefix $(BUILD)/,$(MOTE_LIBM_SRCS:.c=.o)): CFLAGS += -fno-single-precision-constant
endif
