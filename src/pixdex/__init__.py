"""pixdex: photos in a bucket or folder, searchable by what is in them."""

__version__ = "0.1.0"
