# bindings/micropython/mote/print-core.mk - core.mk's results as CMake variables, for
# micropython.cmake: make -s -f print-core.mk MOTE_KERNELS=<set>
include $(dir $(lastword $(MAKEFILE_LIST)))core.mk

print-cmake:
	@echo 'set(MOTE_CORE "$(MOTE_CORE)")'
	@echo 'set(MOTE_CORE_SRCS $(MOTE_CORE_SRCS))'
	@echo 'set(MOTE_CORE_CFLAGS $(CORE_CFLAGS) $(MOTE_CORE_OPT))'
	@echo 'set(MOTE_KERNEL_DEFS $(KERNEL_DEFS))'
