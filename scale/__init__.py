"""Datasets and scale-out: the same jobs over FFHQ-sized datasets, here or on a Ray cluster.

* :mod:`flamefit.scale.datasets`: the photos of folder trees (FFHQ's layout), zip files,
  webdataset tar shards and parquet files, with stable ids; :mod:`flamefit.scale.reading` their
  bytes; :mod:`flamefit.scale.ffhq` the landmarks of FFHQ's ``ffhq-dataset-v2.json``;
* :mod:`flamefit.scale.worker`: one fitting process (one model) over batches of dataset photos;
* :mod:`flamefit.scale.jobs` / :mod:`flamefit.scale.texture_jobs`: ``fit`` and
  ``build-texture-space`` over a dataset, in this process or with ``--ray`` on an actor pool
  (:mod:`flamefit.scale.ray_jobs`; Ray is the optional ``ray`` extra);
* :mod:`flamefit.scale.select`: ``flamefit select``, photos for a texture space by stated criteria.

The top layer beside :mod:`flamefit.web`: it uses fitting and texture_space, none of them uses it.
"""
