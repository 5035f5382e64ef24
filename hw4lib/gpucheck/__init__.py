"""The GPU check, ``tools/gpu_check.sh`` (``python -m hw4lib.gpucheck``): :mod:`.sections`
measures, :mod:`.run` runs the sections and writes the JSON and the table."""
