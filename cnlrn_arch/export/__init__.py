"""Exporting trained networks to other formats: ONNX (``cnlrn export --onnx``)."""
