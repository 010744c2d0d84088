"""nvdiffrast's torch API on glsplat (``import glsplat.nvdiffrast as dr``). Texture part only here."""
from .texture import TextureMipWrapper, texture, texture_construct_mip

__all__ = ["TextureMipWrapper", "texture", "texture_construct_mip"]
