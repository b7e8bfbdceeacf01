#!/usr/bin/env bash
# Wheels the GPU machine lacks (it has torch, onnx, onnxruntime, rich, typer, numpy, scipy,
# scikit-image, opencv, pandas, scikit-learn, hypothesis and pytest): lark, z3-solver, captum and
# Quantus for the agreement figures; and a copy of the VNN-COMP ACAS Xu folder (3 MB), since
# ../shared does not travel. Run here before `benchmarks/gpu/run.sh` on the device, which carries both:
#   run(command="bash benchmarks/gpu/run.sh", carry=[".whl", ".gpu_data"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in /.whl/ /.gpu_data/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl lark==1.3.1 z3-solver==5.4.1.0 captum==0.9.0 quantus==0.6.0 cachetools==8.0.2
mkdir -p .gpu_data
rm -rf .gpu_data/acasxu && cp -r "${SHARED:-../shared}/benchmarks/acasxu" .gpu_data/acasxu
du -sh .whl .gpu_data
