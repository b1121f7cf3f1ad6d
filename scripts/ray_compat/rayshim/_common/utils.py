import asyncio


def hex_to_binary(hex_id):
    return bytes.fromhex(hex_id)


def binary_to_hex(b):
    return b.hex()


def get_or_create_event_loop():
    try:
        return asyncio.get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._common.utils.{name}")
