"""Quantization: group-wise int8/int4 codes and scales, and the schemes that pick a dtype per tensor."""
