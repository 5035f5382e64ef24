"""The course's image metrics: PSNR, SSIM (11x11 Gaussian, valid) and LPIPS(vgg, v0.1).

``psnr``/``ssim`` take HxWx3 images in [0, 1] (numpy or torch; uint8 is scaled by 1/255).
LPIPS needs the VGG16 backbone cached by ``hw4 weights lpips``; without it LPIPS is
reported as missing (``None``), never computed with a random backbone.
"""

from .evaluate import evaluate_folders, evaluate_images, read_image
from .image import psnr, ssim, ssim_map, to_float_image
from .lpips_vgg import LPIPSMetric, load_lpips

__all__ = [
    "psnr",
    "ssim",
    "ssim_map",
    "to_float_image",
    "LPIPSMetric",
    "load_lpips",
    "evaluate_images",
    "evaluate_folders",
    "read_image",
]
