"""The editing core both models share: open a photo (``photo_editor``: detect, align, cache each face's
state), then bring the model's edit back into the photo, either as its change applied to the photo's own
pixels (``transfer``, the default "detail" path) or as the generated face pasted back (``paste``, "replace");
and one face across several ages (``progression``).
"""
