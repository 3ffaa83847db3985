"""Issue #8: the app's fast path (per-photo cache of mask and encoders) gives the plain path's images.

The benchmark (train/bench/cpu_latency.py) times both; this checks that the speed-up changes nothing:
a slider move on a cached session equals re-running detection-free preparation (mask M, E_c, E_s) and
the decoder from scratch, for several settings, in any order. The editor runs T channels_last on a CPU;
the plain path here runs a copy in the default memory format.
"""

import copy

import numpy as np
import torch

from faceage.cusp.editor import CUSPEditor, to_tensor, to_uint8
from faceage.cusp.mask import blur_skip, cusp_mask


def test_cached_slider_moves_equal_the_plain_uncached_path(tiny_weights, face_photo):
    ed = CUSPEditor.load(tiny_weights)
    session = ed.open(face_photo)
    x = to_tensor(session.faces[0].aligned.crop, ed.device)
    assert ed.T.encode(x)[1].is_contiguous(memory_format=torch.channels_last)  # the editor's CPU fast path
    plain_T = copy.deepcopy(ed.T).to(memory_format=torch.contiguous_format)
    settings = [(70, 8, 4.5), (10, 0, 0), (45.5, 1.8, 1.8), (70, 8, 4.5), (90, 9, 9)]
    outputs = []
    for age, sm, sg in settings:
        fast = session.edit_crops(age, sm, sg)[0]
        mask = cusp_mask(ed._classify, x)  # plain: mask and encoders again, in the default memory format
        with torch.no_grad():
            c, f_c, s = plain_T.encode(x)
            plain = plain_T.decode(c, blur_skip(f_c, mask, sm, sg), s, torch.tensor([float(age)]), noise="const")
        assert np.abs(fast.astype(int) - to_uint8(plain[0]).astype(int)).max() <= 1  # uint8 rounding only
        outputs.append(fast)
    assert np.array_equal(outputs[0], outputs[3])  # back to the first setting: the same image
    assert not np.array_equal(outputs[0], outputs[1])  # and the settings matter
