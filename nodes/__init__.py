"""ComfyUI node adapters (thin). Each module exports NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS."""
from . import i4vgen, smoothinit, zs2, zs2_long

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _m in (zs2, zs2_long, smoothinit, i4vgen):
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)
