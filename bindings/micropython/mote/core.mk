# bindings/micropython/mote/core.mk - the core as the MicroPython module builds it:
# firmware/core/sources.mk's sources and flags for the kernel set MOTE_KERNELS, less
# console.c (the serial protocol, which needs a port's hal.h). Included by
# micropython.mk and ../natmod/Makefile; micropython.cmake reads it through
# print-core.mk.

MOTE_CORE := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../../../firmware/core)
MOTE_KERNELS ?= ref
override KERNELS := $(MOTE_KERNELS)
include $(MOTE_CORE)/sources.mk
MOTE_CORE_SRCS := $(filter-out $(MOTE_CORE)/console.c,$(CORE_SRCS))
# The port's optimisation (-Os in MicroPython) gives way to this for the core's files.
MOTE_CORE_OPT ?= -O2

# The core computes its RoPE table in double precision (pow, cos, sin), as the numpy
# reference does. Where nothing else supplies them (a native module; a firmware whose
# MICROPY_FLOAT_IMPL is float, which links only MicroPython's single-precision
# lib/libm) they come from MicroPython's own double libm, with the helpers they call
# (scalbn too, unless a libc.a supplies it).
MOTE_LIBM_DBL := pow.c sqrt.c floor.c cos.c sin.c __cos.c __sin.c __rem_pio2.c __rem_pio2_large.c
