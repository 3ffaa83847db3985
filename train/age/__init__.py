"""The age readers: classifier C ported from dlib's model (``export_classifier``) and estimator A trained on the
UTKFace training split (``train_estimator``)."""
