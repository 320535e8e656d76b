# bindings/micropython/micropython.cmake - `import mote` as a user C module for the
# MicroPython ports built with CMake (rp2, esp32):
#     make -C ports/rp2 USER_C_MODULES=<mote>/bindings/micropython/micropython.cmake
# The core's sources and flags are read from make (mote/print-core.mk, on
# firmware/core/sources.mk), so they are written down in one place. MOTE_KERNELS is
# the kernel set (-DMOTE_KERNELS=cm on the CMake line; ref by default).
# Not built here: the rp2 and esp32 ports are not in the shared MicroPython tree
# (tests/test_micropython.py only configures this file against a stand-in usermod).

set(MOTE_KERNELS "ref" CACHE STRING "Mote kernel set: firmware/core/kernels_<set>.c")
set(MOTE_CORE_CMAKE ${CMAKE_BINARY_DIR}/mote_core.cmake)
execute_process(
    COMMAND make -s --no-print-directory -f ${CMAKE_CURRENT_LIST_DIR}/mote/print-core.mk
            MOTE_KERNELS=${MOTE_KERNELS} print-cmake
    OUTPUT_FILE ${MOTE_CORE_CMAKE}
    RESULT_VARIABLE MOTE_CORE_RESULT)
if(NOT MOTE_CORE_RESULT EQUAL 0)
    message(FATAL_ERROR "mote: cannot read the core's sources (MOTE_KERNELS=${MOTE_KERNELS})")
endif()
include(${MOTE_CORE_CMAKE})

add_library(usermod_mote INTERFACE)
target_sources(usermod_mote INTERFACE ${CMAKE_CURRENT_LIST_DIR}/mote/modmote.c ${MOTE_CORE_SRCS})
target_include_directories(usermod_mote INTERFACE ${MOTE_CORE})
target_compile_options(usermod_mote INTERFACE ${MOTE_KERNEL_DEFS})
# The core's flags after the port's, for the core's files only (as micropython.mk).
set_source_files_properties(${MOTE_CORE_SRCS} PROPERTIES
    COMPILE_OPTIONS "${MOTE_CORE_CFLAGS};-fno-single-precision-constant")
target_link_libraries(usermod INTERFACE usermod_mote)
