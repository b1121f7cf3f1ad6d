import shoal
from rayshim._common.test_utils import Signal


def create_remote_signal_actor(ray=shoal):
    return ray.remote(num_cpus=0)(Signal)
