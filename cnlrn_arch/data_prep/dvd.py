"""The DVD100 test set from the DVD quantitative videos (``cnlrn prepare-dvd``).

Input (Su et al., "Deep Video Deblurring", CVPR 2017), extracted under ROOT:
  quantitative_datasets/<clip>/{GT,input}/<frame>.jpg

DVD100 takes 10 frames of each of the 10 test clips (720p_240fps_2, IMG_0003,
IMG_0021, IMG_0030, IMG_0031, IMG_0032, IMG_0033, IMG_0037, IMG_0039,
IMG_0049): of the n frames sorted by name, frames i*(n-1)//9 for i = 0..9, so
evenly spaced from the first to the last. Output under ROOT:
  DVD100/sharp/<clip>_<frame>.png           GT, sides cropped to multiples of 4
  DVD100/blur_bicubic_X4/<clip>_<frame>.png MATLAB bicubic 1/4 of the blurry
                                            frame, cropped the same way first

Outputs already complete are skipped, so an interrupted run can be restarted.
"""

from os import path as osp

from ..utils.errors import UserError
from .files import convert_images, paired_images

TEST_CLIPS = (
    '720p_240fps_2',
    'IMG_0003',
    'IMG_0021',
    'IMG_0030',
    'IMG_0031',
    'IMG_0032',
    'IMG_0033',
    'IMG_0037',
    'IMG_0039',
    'IMG_0049',
)
FRAMES_PER_CLIP = 10
SOURCE = 'quantitative_datasets'
DVD100 = 'DVD100'


def pick_frames(frames):
    """FRAMES_PER_CLIP evenly spaced frames of a sorted list, first and last included."""
    n, k = len(frames), FRAMES_PER_CLIP
    return [frames[i * (n - 1) // (k - 1)] for i in range(k)]


def prepare_dvd(root, workers):
    """Build DVD100 under ``root`` from its extracted quantitative set, with ``workers`` processes."""
    # check every clip before writing anything
    clips = {}
    for clip in TEST_CLIPS:
        gt_dir, input_dir = (osp.join(root, SOURCE, clip, sub) for sub in ('GT', 'input'))
        frames = paired_images(gt_dir, input_dir)
        if len(frames) < FRAMES_PER_CLIP:
            raise UserError(f'{gt_dir} holds {len(frames)} frames, DVD100 takes {FRAMES_PER_CLIP}')
        clips[clip] = (gt_dir, input_dir, pick_frames(frames))

    jobs = []
    for clip, (gt_dir, input_dir, frames) in clips.items():
        for frame in frames:
            name = f'{clip}_{osp.splitext(frame)[0]}.png'
            jobs += [
                (osp.join(gt_dir, frame), osp.join(root, DVD100, 'sharp', name), True, False),
                (osp.join(input_dir, frame), osp.join(root, DVD100, 'blur_bicubic_X4', name), True, True),
            ]
    convert_images(jobs, workers, 'DVD100')
    print(f'DVD100 ready under {osp.join(root, DVD100)}')
