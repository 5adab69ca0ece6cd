"""The pyrender-based renderer that the moderngl one replaced (mme3dr before issue 12, commit dfa06f2),
kept verbatim for ``benchmarks/render_bench.py``'s (c) measurement only: its loader (``mesh``), scene
builder (``scene``) and renderer (``renderer``), with imports pointed here. Not part of the package;
needs ``pip install pyrender PyOpenGL==3.1.10`` (and ``libosmesa6`` for the OSMesa backend).
"""
