#!/usr/bin/env bash
# Downloads the wheels that a GPU machine's python3 (3.12) lacks for this
# project: tensorflow-datasets (ListOps trees in tree_speed) and its
# dependencies not in that machine's image. gpu_suite.sh installs them there.
# Run in the repository root, once, where pip can reach the package index:
#
#   bash benchmarks/gpu_wheels.sh [DIR]
#
# DIR defaults to workdirs/whl (ignored by git; take it along to the GPU
# machine, and point gpu_suite.sh at another DIR with WHEELS=DIR).
set -eu
dir=${1:-workdirs/whl}
mkdir -p "$dir"
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux1_x86_64"
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp $platforms -d "$dir" tensorflow-datasets==4.9.10 \
  array-record==0.8.6 dm-tree immutabledict simple_parsing docstring-parser \
  tensorflow-metadata termcolor toml googleapis-common-protos
python3 -m pip wheel -q --no-deps -w "$dir" promise==2.3  # an sdist only
ls "$dir"
