"""cuDNN 9 through ctypes: library discovery, bindings, descriptors, weight packing, forward pass.

Nothing here loads cuDNN or touches a GPU at import time.
"""
