"""nvdiffrast's torch API on glsplat: ``import glsplat.nvdiffrast as dr`` in place of ``import nvdiffrast.torch as dr``.

Same names, signatures, defaults, tensor layouts and conventions as nvdiffrast's
``nvdiffrast/torch/ops.py``, on OpenGL (any GPU's driver, or Mesa on a CPU) instead of CUDA. See
:mod:`glsplat.nvdiffrast.ops` for the conventions, :mod:`glsplat.nvdiffrast.analytic` for nvdiffrast's
analytic antialias and :mod:`glsplat.nvdiffrast.texture` for texture sampling (both written in torch).
"""
from .ops import (DepthPeeler, NvdiffrastArgumentError, NvdiffrastTypeError, NvdiffrastValueError,
                  RasterizeCudaContext, RasterizeGLContext, antialias, antialias_construct_topology_hash,
                  get_log_level, interpolate, rasterize, set_log_level)
from .texture import TextureMipWrapper, texture, texture_construct_mip

__all__ = [
    "DepthPeeler", "NvdiffrastArgumentError", "NvdiffrastTypeError", "NvdiffrastValueError", "RasterizeCudaContext", "RasterizeGLContext", "TextureMipWrapper", "antialias",
    "antialias_construct_topology_hash", "get_log_level", "interpolate", "rasterize", "set_log_level", "texture",
    "texture_construct_mip",
]
