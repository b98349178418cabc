"""The host wing: links that need torch and transformers (checkout, golden, onnx, precision).
Never imported on the device."""
