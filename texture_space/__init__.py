"""Texture spaces from many photographs: unwrapping, visibility, completion of unseen texels,
PCA with bounded memory, and the build-and-iterate pipeline that writes ``FLAME_texture.npz``.
"""
