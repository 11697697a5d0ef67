"""Wire formats: one module per protocol."""

from frugal.serving.codecs.simple import decode_predict_request, encode_predict_response
from frugal.serving.codecs.v2 import (
    decode_infer_request,
    encode_infer_response,
    encode_tensor,
    tensor_metadata,
)

__all__ = [
    "decode_infer_request",
    "decode_predict_request",
    "encode_infer_response",
    "encode_predict_response",
    "encode_tensor",
    "tensor_metadata",
]
