#!/usr/bin/env bash
# Installs the Debian 12 packages groupgrad builds with, if any are missing. Run as root.
#   tools/install-deps.sh                   # the library, tests, examples and tools
#   tools/install-deps.sh --with-libtorch   # also the libtorch peer of tools/bench
#                                           # (configure with -DGG_BENCH_LIBTORCH=ON)
set -euo pipefail
packages=(
  g++ cmake ninja-build
  libdnnl-dev libfmt-dev nlohmann-json3-dev                # the library
  libprotobuf-dev protobuf-compiler libboost-dev libspdlog-dev  # its SummaryWriter (TensorBoard)
  ocl-icd-opencl-dev  # dnnl-config.cmake requires OpenCL (only a Recommends of libdnnl-dev)
  catch2 libcli11-dev                                        # tests, tools and examples
  python3-minimal                                            # the layers test (check_layers.py)
  wamerican                                                  # the training example's word list
  libopenmpi-dev openmpi-bin                                 # gg::distributed (GG_WITH_MPI)
)
for arg in "$@"; do
  case "$arg" in
    # libtorch-dev is large (CI does not need it). libopenblas0-pthread takes over libblas.so.3,
    # so that libtorch's matmul is not the reference BLAS (tools/CMakeLists.txt checks).
    --with-libtorch) packages+=(libtorch-dev libopenblas0-pthread) ;;
    *) echo "usage: $0 [--with-libtorch]" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${GG_APT_UPDATE:-0}" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
