"""ComfyUI node adapters (thin). Each node is declared once, beside its code, with :func:`.registry.node`;
importing the method modules registers them (in this order, the order of ComfyUI's mappings), and
:func:`.registry.mappings` gives ComfyUI's ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``."""
from . import registry
from . import zs2, zs2_long, smoothinit, i4vgen, freeinit  # noqa: F401,E401  (importing registers the nodes)

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = registry.mappings()
