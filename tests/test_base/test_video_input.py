"""Videos read before the network is loaded: refused as restoring refuses them, read only while nothing would be
restored anyway."""

import cv2
import numpy as np

from cnlrn_base import video_input
from cnlrn_base.video_input import refused_videos
from tests.helpers import raw_h264


def test_videos_are_read_until_one_would_be_restored(tmp_path, monkeypatch):
    for name, sizes in (('big.mkv', [(16, 12), (32, 24)]), ('huge.mkv', [(16, 12), (64, 48)]), ('ok.mkv', [(16, 12)])):
        (tmp_path / name).write_bytes(raw_h264(sizes))
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((12, 16, 3), np.uint8))
    big, huge, ok, image = (str(tmp_path / name) for name in ('big.mkv', 'huge.mkv', 'ok.mkv', 'x.png'))
    assert refused_videos([big, huge], 192) == [
        f'{big}: frame 1 is 32x24, 768 pixels, over the limit of 192',
        f'{huge}: frame 1 is 64x48, 3072 pixels, over the limit of 192',
    ]
    read = []
    monkeypatch.setattr(video_input, 'check_video', lambda path, max_pixels: read.append(path))
    # the network is loaded once one input would be restored: restoring checks the rest
    assert refused_videos([ok, huge], 192) is None and read == [ok]
    assert refused_videos([image, huge], 192) is None and read == [ok]
