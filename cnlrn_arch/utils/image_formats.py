"""Image file types and small conversions shared by the data tools and inference."""

import numpy as np
from basicsr.utils.matlab_functions import imresize

# lower and upper case, as scandir's suffix match is case-sensitive
IMG_EXTENSIONS = tuple(
    e for ext in ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp') for e in (ext, ext.upper())
)


def bicubic_resize_uint8(img, scale):
    """MATLAB-compatible bicubic resize (BasicSR's ``imresize``) of a uint8 image, rounded to uint8."""
    out = imresize(img.astype(np.float32) / 255.0, scale)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
