import numpy as np

from ward.core import keypoints as K


def test_vsvig_layout_is_five_parts_of_three():
    joints = [j for part in K.VSVIG_PARTS.values() for j in part]
    assert tuple(joints) == K.VSVIG_15
    assert len(set(K.VSVIG_15)) == 15
    assert list(K.PART_OF_JOINT) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_mapping_selects_named_joints():
    kpts = np.arange(18)[:, None].repeat(3, axis=1)  # joint i has value i everywhere
    out = K.to_vsvig(kpts)
    assert out.shape == (15, 3)
    for i, name in enumerate(K.VSVIG_15):
        assert out[i, 0] == K.OPENPOSE_INDEX[name]
    assert "neck" not in K.VSVIG_15 and "r_ear" not in K.VSVIG_15


def test_mapping_rejects_wrong_layout():
    import pytest

    with pytest.raises(ValueError, match="18"):
        K.to_vsvig(np.zeros((15, 3)))
