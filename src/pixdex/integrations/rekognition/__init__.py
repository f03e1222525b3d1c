"""Amazon Rekognition as the analyzer (billed per image): ``pip install 'pixdex[rekognition]'``,
settings section ``[rekognition]``, docs/rekognition.md.

- ``analyzer``: the remote analyzer (DetectLabels, DetectText, S3Object or bytes);
- ``image``: what is sent when a photo is beyond Rekognition's limits;
- ``calls``: the client-side rate limit, retries and usage counters of a metered service;
"""
