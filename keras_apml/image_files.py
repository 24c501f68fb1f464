"""Which files of a folder tree are images of a data set: visible files with an image extension."""

from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_hidden(path):
    """Whether a file or folder is hidden (``.name``: macOS's ``._*`` AppleDouble files, ``.DS_Store``, ...)."""
    return Path(path).name.startswith(".")


def is_image_file(path):
    """Whether ``path`` is an image of a data set: a visible file with one of IMAGE_EXTENSIONS."""
    path = Path(path)
    return not is_hidden(path) and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
