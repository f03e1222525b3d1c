"""S3 and S3-compatible buckets (AWS S3, MinIO, Ceph, R2…), and following them: ``pip install
'pixdex[s3]'``, settings section ``[s3]``, docs/s3.md.

- ``source``: a bucket/prefix as a source (list, fetch, head), with the retry policy;
- ``events``: S3, MinIO, EventBridge and SQS/SNS notifications parsed into changes, and the
  ``ChangeApplier`` that applies them through a pipeline;
- ``worker``: ``pixdex worker``, an SQS consumer; ``enqueue``: ``pixdex enqueue``, a back-fill
  through the queue;
- ``lambda_handler``: the AWS Lambda function (the original deployment);
- ``webhook``: MinIO's webhook target on ``pixdex serve``.
"""
