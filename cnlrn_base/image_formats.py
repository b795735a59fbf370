"""Image file types and small conversions shared by the data tools and inference."""

import os

import numpy as np

# lower and upper case, as suffix matches are case-sensitive
IMG_EXTENSIONS = tuple(
    e for ext in ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp') for e in (ext, ext.upper())
)


def image_files(root):
    """Relative paths of the image files under ``root``, at any depth, hidden files and folders left out.

    basicsr's scandir descends into every hidden entry it meets, so a ``.DS_Store``
    file in a data folder stops it with NotADirectoryError. Symlinked folders are
    followed (a clip linked into a data set is part of it), each real folder once,
    so a link back up the tree ends.
    """
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        here = os.stat(folder)
        seen.add((here.st_dev, here.st_ino))
        subfolders[:] = [d for d in subfolders if not d.startswith('.') and _unseen(os.path.join(folder, d), seen)]
        rel = os.path.relpath(folder, root)
        found += [
            name if rel == '.' else os.path.join(rel, name)
            for name in files
            if not name.startswith('.') and name.endswith(IMG_EXTENSIONS)
        ]
    return found


def _unseen(folder, seen):
    """Whether the real folder behind ``folder`` is not in ``seen`` (device, inode) pairs yet."""
    st = os.stat(folder)
    return (st.st_dev, st.st_ino) not in seen


def bicubic_resize_uint8(img, scale):
    """MATLAB-compatible bicubic resize (BasicSR's ``imresize``) of a uint8 image, rounded to uint8."""
    # imported here: basicsr imports torch, and the file types above are read before torch is (cnlrn infer)
    from basicsr.utils.matlab_functions import imresize

    out = imresize(img.astype(np.float32) / 255.0, scale)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
