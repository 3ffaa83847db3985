"""Evaluation: CUSP on the UTKFace test split (``cusp``: the paper's tasks), AgingMapGAN (``amgan``), per-sign
maps rendered by CUSP (``map``), both on real photos (``real``); the judges (``metrics``: estimator A, dlib
identity, KID/FID) and the report tables (``report``)."""
