#!/usr/bin/env bash
# segsynth front door. Idempotent: each step skips what is already in place.
#
#   ./segsynth.sh demo    install what is missing, build, process the embedded demo clip -> out/
#   ./segsynth.sh test    install what is missing, build, run the whole test suite (CI runs this)
#   ./segsynth.sh setup   only install and build
#   ./segsynth.sh bench   setup, then the file-job benchmark (segsynth bench)
#   ./segsynth.sh fuzz-media [N]   setup, then the media mutation campaign (N seeded positions per clip)
#   ./segsynth.sh soak [MIN]  setup, then the live soak benchmark (1080p30, GAN, RTSP client)
#   ./segsynth.sh setup-gpu   optional: onnxruntime-gpu + CUDA/cuDNN wheels, GPU build
#   ./segsynth.sh gpu-check-build   build the GStreamer-free core benchmark for a GPU box
#   ./segsynth.sh gpu-check   on the GPU box: print the inference-core table on CUDA
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD
ORT_VERSION=1.31.1
MEDIAPIPE_NPM="@mediapipe/selfie_segmentation@0.1.1675465747"
APT_PACKAGES=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  gstreamer1.0-rtsp gstreamer1.0-x gstreamer1.0-gl gstreamer1.0-nice
)
# Only the test command needs these: a real X server for the window tests, a real
# browser for the web page test (driven by playwright from PyPI).
TEST_APT_PACKAGES=(xvfb chromium)
# opencv-python-headless: the benchmark's Python peer (scripts/python_peer.py, `bench --peer`).
PY_PACKAGES=(onnxruntime==$ORT_VERSION onnx==1.23.2 tflite==2.18.0 ai-edge-litert==2.3.0 numpy==2.4.6 scikit-image==0.26.0 prometheus-client==0.23.1 playwright==1.65.3 opencv-python-headless==5.1.0.95)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'segsynth.sh: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"; fi
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v npm >/dev/null || missing+=(npm)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first; segsynth needs rustc >= 1.92"
}

install_python() {
  local stamp=.venv/.segsynth-packages want="${PY_PACKAGES[*]}"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "creating .venv with ${PY_PACKAGES[*]}"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    echo "$want" > "$stamp"
  fi
}

install_ort() {
  local lib=.deps/onnxruntime/libonnxruntime.so.$ORT_VERSION
  if [ ! -f "$lib" ]; then
    say "installing ONNX Runtime $ORT_VERSION (from the PyPI onnxruntime wheel) into .deps/onnxruntime"
    mkdir -p .deps/onnxruntime
    cp "$(.venv/bin/python -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')/libonnxruntime.so.$ORT_VERSION" "$lib"
  fi
}

fetch_tflite() {
  if [ -f .deps/npm/package/selfie_segmentation.tflite ] && [ -f .deps/npm/package/selfie_segmentation_landscape.tflite ]; then return; fi
  say "fetching MediaPipe selfie segmentation from the npm registry ($MEDIAPIPE_NPM)"
  mkdir -p .deps/npm
  (cd .deps/npm && rm -rf package ./*.tgz && npm pack --silent "$MEDIAPIPE_NPM" >/dev/null && tar xzf ./*.tgz)
}

install_models() {
  fetch_tflite
  for m in selfie:selfie_segmentation selfie_landscape:selfie_segmentation_landscape; do
    local manifest=${m%%:*} file=${m##*:}
    # Converted again when the converter changed (it gave the model its batch dimension).
    [ "models/$file.onnx" -nt models/convert_selfie.py ] && continue
    local want have
    want=$(sed -n 's/^source_sha256 = "\(.*\)"/\1/p' "models/$manifest.toml")
    have=$(sha256sum ".deps/npm/package/$file.tflite" | cut -d' ' -f1)
    [ "$want" = "$have" ] || die "$file.tflite has sha256 $have, models/$manifest.toml expects $want"
    say "converting $file.tflite to models/$file.onnx"
    .venv/bin/python models/convert_selfie.py ".deps/npm/package/$file.tflite" "models/$file.onnx"
  done
}

build() {
  say "building segsynth and its GStreamer plugin (release; target/release/libgstsegsynth.so)"
  cargo build --release --quiet --workspace
}

demo_clip() {
  if [ ! -f .deps/demo/person.mp4 ]; then
    say "making the demo clip .deps/demo/person.mp4 from tests/data/astronaut.jpg"
    mkdir -p .deps/demo
    target/release/segsynth make-clip .deps/demo/person.mp4 --photo tests/data/astronaut.jpg --frames 150
  fi
}

setup() { install_apt "$@"; install_python; install_ort; install_models; build; }

case "${1:-demo}" in
  setup) setup ;;
  demo)
    setup; demo_clip
    mkdir -p out
    say "processing the demo clip: background replaced by GAN-generated foliage (out/demo.mp4)"
    target/release/segsynth process .deps/demo/person.mp4 -o out/demo.mp4 --overwrite --content gan:foliage
    say "done: out/demo.mp4"
    ;;
  test)
    setup "${TEST_APT_PACKAGES[@]}"
    say "converter check against the TFLite interpreter (ai-edge-litert)"
    for f in selfie_segmentation selfie_segmentation_landscape; do
      .venv/bin/python models/check_conversion.py ".deps/npm/package/$f.tflite" "models/$f.onnx"
    done
    say "cargo test (unit + integration, real GStreamer, ONNX Runtime and models)"
    cargo test --release -- --test-threads=2
    say "inference core builds and runs without GStreamer (Rust kernels and ONNX pixel graphs)"
    cargo build --release --quiet --no-default-features --bin segsynth-core-bench
    target/release/segsynth-core-bench --sizes 320x180 --frames 4 --streams 1,2 --gan foliage
    say "CUDA/TensorRT build compiles"
    cargo check --release --quiet --features cuda,tensorrt
    ;;
  setup-gpu)
    # Optional: the CUDA 13 / cuDNN 9 build of ONNX Runtime and its runtime wheels, from PyPI.
    setup
    say "creating .venv-gpu with onnxruntime-gpu==$ORT_VERSION and its CUDA/cuDNN wheels"
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install -q --disable-pip-version-check "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
    cargo build --release --quiet --features cuda,tensorrt
    lib=$(.venv-gpu/bin/python -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')
    nv=$(.venv-gpu/bin/python -c 'import nvidia; print(nvidia.__path__[0])' 2>/dev/null || true)
    {
      echo "# written by ./segsynth.sh setup-gpu: the GPU build of ONNX Runtime and its CUDA/cuDNN libraries"
      echo "export ORT_DYLIB_PATH=$lib/libonnxruntime.so.$ORT_VERSION"
      echo "export LD_LIBRARY_PATH=$lib:$(find "${nv:-/nonexistent}" -name 'lib' -type d 2>/dev/null | paste -sd:):\${LD_LIBRARY_PATH:-}"
    } > .deps/gpu.env
    say "GPU build ready; run: source .deps/gpu.env && target/release/segsynth process IN -o OUT --device cuda"
    ;;
  bench) setup; shift; target/release/segsynth bench "$@" ;;
  fuzz-media)
    # Long version of the mutation test: real clips (MP4/H.264+AAC, WebM/VP8+Vorbis,
    # AVI/MJPEG) with bytes flipped, deleted, duplicated and cut at seeded positions, and
    # spliced (the head of one clip, the tail of another).
    setup
    dir=target/fuzz-media && mkdir -p "$dir"
    [ -f "$dir/person.mp4" ] || target/release/segsynth make-clip "$dir/person.mp4" --photo tests/data/astronaut.jpg --width 320 --height 180 --frames 30
    [ -f "$dir/clip.webm" ] || gst-launch-1.0 -q videotestsrc num-buffers=30 ! video/x-raw,width=320,height=180 ! vp8enc ! webmmux name=m ! filesink location="$dir/clip.webm" audiotestsrc num-buffers=20 ! audioconvert ! vorbisenc ! m.
    [ -f "$dir/clip.avi" ] || gst-launch-1.0 -q videotestsrc num-buffers=30 ! video/x-raw,width=320,height=180 ! jpegenc ! avimux ! filesink location="$dir/clip.avi"
    python3 tests/fuzz/mutate_inputs.py target/release/segsynth "$dir/work" "$dir/person.mp4" "$dir/clip.webm" "$dir/clip.avi" --positions "${2:-100}"
    ;;
  soak) setup; python3 tests/soak.py target/release/segsynth --minutes "${2:-10}" ;;
  gpu-check-build)
    # Here: the inference-core benchmark with CUDA/TensorRT, accepting ONNX Runtime >= 1.23
    # (a GPU box may have 1.30), in its own target dir.
    setup
    cargo build --release --quiet --no-default-features --features cuda,tensorrt \
      --bin segsynth-core-bench --target-dir target/gpu
    strip target/gpu/release/segsynth-core-bench
    # ONNX Runtime's CUDA build for a box whose own wheel is CPU-only, small enough to carry:
    # its CUDA provider (284 MB) with the GPU code of every architecture but Hopper's (sm_90,
    # H100/H200) zeroed, xz-compressed (52 MB), in .gpu/ (ignored by git).
    whl=.deps/ort-gpu
    ls $whl/onnxruntime_gpu-$ORT_VERSION-*.whl >/dev/null 2>&1 ||
      .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d $whl "onnxruntime-gpu==$ORT_VERSION"
    mkdir -p .gpu
    python3 - $whl/onnxruntime_gpu-$ORT_VERSION-*.whl .gpu "${GPU_ARCH:-90}" <<'PY'
import lzma, struct, sys, zipfile
wheel, out, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
z = zipfile.ZipFile(wheel)
for name in z.namelist():
    base = name.rsplit("/", 1)[-1]
    if not name.startswith("onnxruntime/capi/libonnxruntime") or "tensorrt" in base:
        continue
    data = bytearray(z.read(name))
    if base == "libonnxruntime_providers_cuda.so":
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shsize, shnum, shstr = struct.unpack_from("<HHH", data, 0x3A)
        sec = lambda i: struct.unpack_from("<IIQQQQ", data, shoff + i * shsize)
        names = sec(shstr)[4]
        for i in range(shnum):
            sname, _, _, _, off, size = sec(i)
            if bytes(data[names + sname:names + sname + 10]) != b".nv_fatbin":
                continue
            pos, end = off, off + size
            while pos < end:  # fatbin containers, each a list of (header, payload) entries
                magic, _, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
                if magic != 0xBA55ED50:
                    pos += 8
                    continue
                p, e = pos + hsize, pos + hsize + fsize
                while p < e:
                    kind, _, ehs, psize = struct.unpack_from("<HHIQ", data, p)
                    arch, = struct.unpack_from("<I", data, p + 28)
                    if arch != keep:
                        data[p + ehs:p + ehs + psize] = bytes(psize)
                    p += ehs + psize
                pos = e
    with lzma.open(f"{out}/{base}.xz", "wb", preset=9) as f:
        f.write(data)
    print(f"{out}/{base}.xz")
PY
    say "carry target/gpu/release/segsynth-core-bench, models/*.onnx and .gpu/ (over the 64 MiB limit with the tree? carry .gpu/libonnxruntime_providers_cuda.so.xz in a call of its own first); run ./segsynth.sh gpu-check there"
    ;;
  gpu-check)
    # There: no GStreamer, no network, Python with onnxruntime (GPU build) and the NVIDIA wheels.
    bin=target/gpu/release/segsynth-core-bench
    [ -x "$bin" ] || die "$bin is missing: run ./segsynth.sh gpu-check-build here first and carry it"
    py=${PYTHON:-python3}
    if [ -z "${ORT_DYLIB_PATH:-}" ] && ls .gpu/libonnxruntime.so.*.xz >/dev/null 2>&1; then
      # The CUDA build packed by gpu-check-build (an earlier call may have unpacked the
      # provider already: it stays in /tmp/segsynth-ort while the box is held).
      mkdir -p /tmp/segsynth-ort
      for f in .gpu/*.xz; do
        "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
          "$f" "/tmp/segsynth-ort/$(basename "$f" .xz)"
      done
      export ORT_DYLIB_PATH=$(ls /tmp/segsynth-ort/libonnxruntime.so.* | head -n 1)
      export LD_LIBRARY_PATH="$(ls -d /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}"
    fi
    if [ -n "${ORT_DYLIB_PATH:-}" ]; then
      # A GPU build of ONNX Runtime brought along (the box's own wheel may be CPU-only).
      lib=$ORT_DYLIB_PATH capi=$(dirname "$ORT_DYLIB_PATH")
      [ -f "$lib" ] || die "ORT_DYLIB_PATH=$lib does not exist"
      ls "$capi"/libonnxruntime_providers_cuda.so >/dev/null || die "no CUDA provider library beside $lib"
    else
      "$py" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
      capi=$("$py" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')
      lib=$(find "$capi" -maxdepth 1 -name 'libonnxruntime.so*' | sort | head -n 1)
      [ -n "$lib" ] || die "no libonnxruntime.so* in $capi: this onnxruntime wheel has no shared library"
    fi
    nvlibs=$("$py" -c 'import glob, os, site; print(":".join(sorted({d for sp in site.getsitepackages() for d in glob.glob(os.path.join(sp, "nvidia", "*", "lib"))})))')
    export ORT_DYLIB_PATH=$lib LD_LIBRARY_PATH="$capi:$nvlibs:${LD_LIBRARY_PATH:-}"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    shift
    # 720p x 1/8/40/64 streams, a session each and one batched session (the many-streams
    # targets: the largest N at 30 fps is printed), then 1080p with GAN content.
    "$bin" --device cuda --sizes 1280x720 --streams 1,8,40,64 --pixels native,graph --gan none --batch off,on --frames 60 "$@"
    "$bin" --device cuda --sizes 1920x1080 --streams 1,4 --pixels native,graph --gan foliage --frames 60 "$@"
    ;;
  *) die "unknown command ${1}; expected demo, test, setup, setup-gpu, bench, fuzz-media, soak, gpu-check-build or gpu-check" ;;
esac
