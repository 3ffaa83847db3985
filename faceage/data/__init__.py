"""Datasets of faceage: the UTKFace reader, packed splits and the age groups."""

from faceage.data.ages import (
    AGE_GROUPS,
    GROUP_NAMES,
    MAX_AGE,
    NUM_GROUPS,
    age_to_group,
    denormalize_age,
    group_centre,
    normalize_age,
)
from faceage.data.utkface import (
    DatasetError,
    PackedFaces,
    Record,
    UTKFace,
    UTKFaceIndex,
    default_root,
    pack_split,
    parse_name,
    verify_checksums,
)

__all__ = [
    "AGE_GROUPS",
    "GROUP_NAMES",
    "MAX_AGE",
    "NUM_GROUPS",
    "DatasetError",
    "PackedFaces",
    "Record",
    "UTKFace",
    "UTKFaceIndex",
    "age_to_group",
    "default_root",
    "denormalize_age",
    "group_centre",
    "normalize_age",
    "pack_split",
    "parse_name",
    "verify_checksums",
]
