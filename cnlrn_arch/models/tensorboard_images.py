"""The first validation images in TensorBoard: the blurry LR upscaled with bicubic | the output | the sharp target.

BasicSR logs only scalars; ``val: {tb_images: N}`` (default :data:`DEFAULT_TB_IMAGES`, 0 turns it off) sends
the first N validation images of each validation as one picture each, tagged
``val_images/<dataset>/<image name>``, so TensorBoard's step slider shows how each one improves.
"""

import os.path as osp
from typing import Any

import numpy as np
import torch
from basicsr.utils import tensor2img

from cnlrn_base.image_formats import bicubic_resize_uint8

# a few pictures per validation: enough to see the restoration, little disk (each is a PNG in the event file)
DEFAULT_TB_IMAGES = 4


def side_by_side(lq: torch.Tensor, output: torch.Tensor, gt: torch.Tensor | None = None) -> np.ndarray:
    """The input bicubic-upscaled to the output's height, the output and the target (when given), left to right.

    Args:
        lq (torch.Tensor): the input, 1 x C x h x w in [0, 1], RGB.
        output (torch.Tensor): the network's output, 1 x C x H x W (x4 of ``lq``, or its size in pre-training).
        gt (torch.Tensor | None): the target the output is compared with, the output's size.

    Returns:
        np.ndarray: uint8 RGB, H x (2 or 3)W x C; panels of unequal height are padded with black below.
    """
    lq_img, out_img = (np.atleast_3d(tensor2img([t], rgb2bgr=False)) for t in (lq, output))
    panels = [bicubic_resize_uint8(lq_img, out_img.shape[0] / lq_img.shape[0]), out_img]
    if gt is not None:
        panels.append(np.atleast_3d(tensor2img([gt], rgb2bgr=False)))
    height = max(p.shape[0] for p in panels)
    return np.hstack([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels])


class ValidationImages:
    """Sends the first ``count`` images of one validation to TensorBoard, as :func:`side_by_side` pictures.

    Args:
        tb_logger (Any): TensorBoard's SummaryWriter.
        dataset_name (str): the validation set's name, in the tags.
        current_iter (int): the iteration validated after, the pictures' step.
        count (int): how many images to send.
    """

    def __init__(self, tb_logger: Any, dataset_name: str, current_iter: int, count: int) -> None:
        self.tb_logger, self.dataset_name, self.current_iter = tb_logger, dataset_name, current_iter
        self.left = count

    @classmethod
    def for_validation(
        cls, opt: dict[str, Any], tb_logger: Any, dataset_name: str, current_iter: int
    ) -> 'ValidationImages':
        """The pictures of one validation: the first ``val.tb_images`` images (default 4; none without a tb_logger).

        Args:
            opt (dict[str, Any]): the run's options.
            tb_logger (Any): TensorBoard's SummaryWriter or None.
            dataset_name (str): the validation set's name.
            current_iter (int): the iteration validated after.

        Returns:
            ValidationImages: to hand each validated image to.
        """
        count = opt['val'].get('tb_images', DEFAULT_TB_IMAGES) if tb_logger is not None else 0
        return cls(tb_logger, dataset_name, current_iter, count)

    def add(self, lq_path: str, visuals: dict[str, torch.Tensor]) -> None:
        """Send one validated image while fewer than ``count`` were sent.

        Args:
            lq_path (str): the input's file path or LMDB key; its name without extension (as in SRModel's saved
                images) ends the tag.
            visuals (dict[str, torch.Tensor]): SRModel.get_current_visuals(): 'lq', 'result' and maybe 'gt'.
        """
        if self.left <= 0:
            return
        self.left -= 1
        tag = f'val_images/{self.dataset_name}/{osp.splitext(osp.basename(lq_path))[0]}'
        picture = side_by_side(visuals['lq'], visuals['result'], visuals.get('gt'))
        self.tb_logger.add_image(tag, picture, self.current_iter, dataformats='HWC')
