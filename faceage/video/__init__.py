"""faceage on video: ``faceage.video.edit`` (the editor), ``.track`` (faces through a clip), ``.change`` (a
track's edit laid onto each frame), ``.io`` (PyAV in and out).

    from faceage.video import VideoEditor, edit_video
    edit_video("in.mp4", "out.mp4", age=70)
"""

from faceage.video.edit import VideoEditor, VideoResult, edit_video

__all__ = ["VideoEditor", "VideoResult", "edit_video"]
