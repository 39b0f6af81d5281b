"""Where artifact values live: content-addressed (the key is the hash of the stored
bytes), in a local folder or in S3 (:mod:`.content`). The ledger keeps only keys, sizes
and types."""
