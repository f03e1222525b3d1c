"""pixdex: photos in a bucket or folder, searchable by what is in them."""

import os

# ONNX Runtime (1.32 on Linux) queues usage telemetry — a device id, the OS, CPU model, memory,
# the process name — under ~/.cache/Microsoft/DeveloperTools for upload to Microsoft, unless
# ORT_DISABLE_TELEMETRY is set when it is first imported. A self-hosted photo index does not
# report on the machine it runs on: off unless the user set the variable (0 leaves ONNX
# Runtime's default). This package is imported before any of its modules import onnxruntime.
# tests/test_telemetry.py; docs/security.md.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.2.0"
