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

  DVD100/<folder>.sources.json              what each folder was made from

Before anything is written, every frame used is checked: readable, one file
a frame, GT and blurry input of one size. Outputs already complete and made
from the sources as they are now are skipped, so an interrupted run can be
restarted; a changed source rebuilds what was made from it. One run at a
time per ROOT.
"""

from os import path as osp

from cnlrn_arch.data_prep.checks import check_scale, paired_images, read_sources
from cnlrn_arch.data_prep.files import convert_images, root_lock
from cnlrn_base.errors import UserError

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
    with root_lock(root):
        pairs = {}  # output name -> (GT path, blurry input path)
        for clip in TEST_CLIPS:
            gt_dir, input_dir = (osp.join(root, SOURCE, clip, sub) for sub in ('GT', 'input'))
            frames = paired_images(gt_dir, input_dir)
            if len(frames) < FRAMES_PER_CLIP:
                raise UserError(f'{gt_dir} holds {len(frames)} frames, DVD100 takes {FRAMES_PER_CLIP}')
            for frame in pick_frames(frames):
                pairs[f'{clip}_{osp.splitext(frame)[0]}.png'] = osp.join(gt_dir, frame), osp.join(input_dir, frame)
        sources = read_sources([path for pair in pairs.values() for path in pair], workers)
        check_scale(list(pairs.values()), sources, 1, 'GT frames not the size of their blurry input')

        for folder, which, downscale in (('sharp', 0, False), ('blur_bicubic_X4', 1, True)):
            jobs = {name: (pair[which], True, downscale) for name, pair in pairs.items()}
            convert_images(osp.join(root, DVD100, folder), jobs, sources, workers, f'DVD100 {folder}')
    print(f'DVD100 ready under {osp.join(root, DVD100)}')
