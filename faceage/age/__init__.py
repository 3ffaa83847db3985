"""Reading a face's age: classifier C (``classifier``, dlib's age model ported to torch; CUSP's mask and the
face's own age in the detail path) and estimator A (``estimator``, ours, used only to judge edits).
"""
