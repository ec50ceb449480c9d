//! Inference on ONNX Runtime.
