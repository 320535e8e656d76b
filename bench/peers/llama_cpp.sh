#!/usr/bin/env bash
# Build llama.cpp, the peer of the side-by-side benchmark (bench/linux.py), from the
# llama-cpp-python sdist the issue names, OUTSIDE this tree (its code is never committed).
# Two builds of the same sources:
#   native  GGML_NATIVE (-march=native): what a user gets, for wall-clock tok/s
#   avx2    AVX/AVX2/FMA/F16C/BMI2 only, no AVX-512 or VNNI: valgrind 3.19 cannot
#           decode those, so callgrind counts this one
# Both static, CPU only, OpenMP on (llama.cpp's default threading).
# Needs cmake and g++ (not in scripts/setup.sh: only this benchmark builds C++).
# Writes $DEST/READY, "<build> <tool> <path>" per line, as soon as the native build runs
# (so that a tokenizer comparison can start) and again with both builds.
# Usage: bash bench/peers/llama_cpp.sh [DEST]   (default /work/scratch/llama.cpp)
set -euo pipefail

VERSION=0.3.36
DEST=${1:-/work/scratch/llama.cpp}
SRC=$DEST/llama_cpp_python-$VERSION/vendor/llama.cpp
TOOLS=(llama-completion llama-bench llama-tokenize llama-perplexity)

mkdir -p "$DEST"
rm -f "$DEST/READY"
if [ ! -d "$SRC" ]; then
    (cd "$DEST" && pip download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d . \
        && tar xzf "llama_cpp_python-$VERSION.tar.gz")
fi

common=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_BACKEND_DL=OFF
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
        -DLLAMA_BUILD_APP=OFF)
configure() {  # build-dir, flags...
    local dir=$1; shift
    cmake -S "$SRC" -B "$DEST/$dir" "${common[@]}" "$@" >"$DEST/$dir.configure.log"
}
configure build-native -DGGML_NATIVE=ON
configure build-avx2 -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF \
    -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF

echo "# llama.cpp from llama-cpp-python==$VERSION (vendor/llama.cpp), built by bench/peers/llama_cpp.sh" \
    >"$DEST/READY.tmp"
for dir in build-native build-avx2; do
    cmake --build "$DEST/$dir" -j "$(nproc)" --target "${TOOLS[@]}" >"$DEST/$dir.build.log"
    for tool in "${TOOLS[@]}"; do
        "$DEST/$dir/bin/$tool" --version >/dev/null 2>&1 || { echo "$dir/bin/$tool does not run" >&2; exit 1; }
        echo "${dir#build-} $tool $DEST/$dir/bin/$tool" >>"$DEST/READY.tmp"
    done
    cp "$DEST/READY.tmp" "$DEST/READY.part"
    mv "$DEST/READY.part" "$DEST/READY"
done
rm "$DEST/READY.tmp"
cat "$DEST/READY"
