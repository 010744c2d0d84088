"""Image files in and out: premultiplied RGBA tensors as 8-bit PNG, JPEG, ... files, and back.

Renders are premultiplied RGBA (``rgb <= alpha``); files store straight (unpremultiplied)
color next to alpha, or opaque RGB. :func:`save_image` keeps the alpha channel (the
silhouette) when asked to and the format can hold it, else composites over a background color;
:func:`load_image` returns premultiplied RGBA and whether the file had alpha.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# PIL format names whose files keep an alpha channel.
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF", "TGA")
# Extensions named in messages about unknown ones.
COMMON = ".png, .jpg, .webp, .tif"


def image_format(path: Path | str) -> str:
    """The PIL format that writes ``path``, from its extension; ``ValueError`` if none does."""
    suffix = Path(path).suffix.lower()
    format_ = Image.registered_extensions().get(suffix)
    if format_ is None or format_ not in Image.SAVE:
        what = f"'{suffix}' is not an image file extension" if suffix else "the name has no file extension"
        raise ValueError(f"{path}: {what}; use {COMMON}, ...")
    return format_


def keeps_alpha(path: Path | str) -> bool:
    """Whether ``path``'s format stores an alpha channel (PNG yes, JPEG no)."""
    return image_format(path) in ALPHA_FORMATS


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[H, W, C]`` floats in [0, 1] (clamped) as ``uint8`` (rounded to nearest)."""
    return (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def save_image(path: Path | str, image: torch.Tensor, background=None) -> None:
    """Write premultiplied RGBA ``[H, W, 4]`` to an image file (format from the extension).

    Args:
        path: the file; its folder must exist.
        image: ``[H, W, 4]`` premultiplied RGBA, as :func:`glsplat.render` returns per image;
            or an opaque picture, ``[H, W, 3]`` RGB or ``[H, W, 1]`` gray in [0, 1] (clamped),
            written as it is.
        background: for RGBA: ``None`` writes RGBA with straight color (``rgb / alpha``), which
            needs a format with alpha (:data:`ALPHA_FORMATS`); a color ``[3]`` in [0, 1]
            writes opaque RGB, the image composited over it.
    """
    format_ = image_format(path)
    if image.dim() != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected premultiplied RGBA [H, W, 4], or RGB [H, W, 3] or gray [H, W, 1], "
                         f"got {list(image.shape)}")
    image = image.detach().float().cpu()
    if image.shape[-1] != 4:
        pixels = to_uint8(image)
        Image.fromarray(pixels[..., 0] if image.shape[-1] == 1 else pixels).save(path)
        return
    rgb, alpha = image[..., :3], image[..., 3:]
    if background is None:
        if format_ not in ALPHA_FORMATS:
            raise ValueError(f"{path}: {format_} has no alpha channel; give a background color")
        straight = torch.where(alpha > 0, rgb / alpha.clamp(min=1e-12), torch.zeros_like(rgb))
        Image.fromarray(to_uint8(torch.cat([straight, alpha], -1)), "RGBA").save(path)
    else:
        background = torch.as_tensor(background, dtype=image.dtype).reshape(3)
        Image.fromarray(to_uint8(rgb + (1 - alpha) * background), "RGB").save(path)


def read_pixels(path: Path | str, mode: str, what: str = "image") -> tuple[np.ndarray, bool]:
    """An image file's pixels converted to PIL ``mode`` ("RGB", "RGBA"), ``uint8 [H, W, C]`` row 0 at
    the top, and whether the file had alpha. ``FileNotFoundError`` for a missing file (naming it a
    ``what`` file), ``ValueError`` naming the file for one PIL cannot read (empty, truncated, foreign,
    or a decompression bomb)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such {what} file: {path}")
    try:
        with Image.open(path) as image:
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            return np.array(image.convert(mode)), has_alpha
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        # PIL's messages for empty, truncated or foreign files do not all name the file.
        raise ValueError(f"{path}: could not read an image ({error})") from error


def load_image(path: Path | str) -> tuple[torch.Tensor, bool]:
    """An image file as premultiplied RGBA ``[H, W, 4]`` float32, and whether it had alpha.

    Without alpha (RGB, grayscale, JPEG) the image is opaque: alpha 1. ``FileNotFoundError``
    for a missing file, ``ValueError`` for one PIL cannot read.
    """
    pixels, has_alpha = read_pixels(path, "RGBA")
    rgba = torch.from_numpy(pixels.astype(np.float32) / 255)
    return torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1), has_alpha
