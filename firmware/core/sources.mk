# firmware/core/sources.mk - the core's sources and the kernel set, for every build
# (firmware/Makefile, firmware/ports/*/Makefile). Set MOTE_CORE (this directory, as
# the including Makefile names it) and KERNELS first.
#
# A kernel set is a file kernels_<set>.c (with its header kernels_<set>.h); `ref` is
# the reference alone. Every set present is a valid KERNELS. A set may build on one
# other (KERNELS_BASE_<set>): its sources come along, and the set's header includes the
# base's, which takes the ops the set leaves alone.
KERNELS_BASE_mve := dsp

KERNEL_SETS := $(sort $(patsubst $(MOTE_CORE)/kernels_%.c,%,$(wildcard $(MOTE_CORE)/kernels_*.c)))
ifneq ($(words $(KERNELS)),1)
  $(error KERNELS must be one of: $(KERNEL_SETS))
endif
ifeq ($(filter $(KERNELS),$(KERNEL_SETS)),)
  $(error KERNELS must be one of: $(KERNEL_SETS) (firmware/core/kernels_<set>.c), not '$(KERNELS)')
endif

# Everything but the optional sets: the reference kernels are always in.
CORE_COMMON_SRCS := $(filter-out $(MOTE_CORE)/kernels_%.c,$(wildcard $(MOTE_CORE)/*.c)) \
	$(MOTE_CORE)/kernels_ref.c
CORE_SRCS := $(CORE_COMMON_SRCS) $(if $(filter-out ref,$(KERNELS)),$(MOTE_CORE)/kernels_$(KERNELS).c) \
	$(addprefix $(MOTE_CORE)/kernels_,$(addsuffix .c,$(KERNELS_BASE_$(KERNELS))))
KERNEL_DEFS := $(if $(filter-out ref,$(KERNELS)),-DMOTE_KERNELS=$(KERNELS))

# GCC vectorizes float loops with MVE (Armv8.1-M: Cortex-M55, M85), whose float
# arithmetic flushes subnormals to zero, unlike the reference's IEEE arithmetic: for
# such a CPU (CORE_TARGET_FLAGS, the port's CPU flags, set first) the core's C is not
# auto-vectorized. The mve set uses MVE float only where it proves no lane meets a
# subnormal.
CORE_NO_MVE_FLOAT := $(if $(shell $(CC) $(CORE_TARGET_FLAGS) -dM -E -x c /dev/null 2>/dev/null | \
	grep __ARM_FEATURE_MVE),-fno-tree-vectorize)

# The compiler flags every core build shares (a port adds its CPU and board flags);
# the host builds add CORE_STRICT_WARN, which the board ports' files do not meet.
CORE_CFLAGS := -std=c99 -Wall -Wextra -Werror -ffp-contract=off -fno-math-errno $(KERNEL_DEFS) \
	$(CORE_NO_MVE_FLOAT)
CORE_STRICT_WARN := -Wshadow -Wstrict-prototypes -Wmissing-prototypes
