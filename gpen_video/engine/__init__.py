"""ONNX files and TensorRT engines as explicit, cached build steps, and the FP16 quality gate.

Modules (none imports ``tensorrt`` at import time; :mod:`.trt` does, when asked):

* :mod:`.paths` — where cached ONNX files, engines and timing caches live.
* :mod:`.locking` — file locks shared between processes, atomic writes.
* :mod:`.onnx_cache` — the dynamic-batch ONNX export of a GPEN, cached by a hash of the
  weights, the architecture and the opset.
* :mod:`.profile` — the optimisation profile (min/opt/max batch) from ``--batch``/``--max-batch``.
* :mod:`.key` — engine cache keys (ONNX sha256, TensorRT version, GPU, precision, profile).
* :mod:`.timing_cache` — a TensorRT timing cache file merged under a lock by every builder.
* :mod:`.precision` — which layers an FP16 engine keeps in FP32.
* :mod:`.mixed` — that plan written into the ONNX graph (FP16/BF16 casts) for strongly typed builds.
* :mod:`.gate` — the FP16 quality gate: candidate vs FP32 torch on real face crops.
* :mod:`.trt`, :mod:`.build`, :mod:`.runtime` — the TensorRT 10/11 builder and runtime (need the
  ``tensorrt`` extra and a CUDA GPU).
"""
